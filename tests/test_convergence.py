"""The stopping rule: the seed-mean front moves (or not) beyond the seed noise; and
`run --until-converged` end to end on a tiny space."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search import configurations as configs
from search import records
from search.convergence import convergence, moved
from tests.conftest import run_cli

MAXIMIZE = (True, False)  # SSIM up, MSE down
NOISE = configs.Noise(sd=(0.01, 0.001), dof=40, n_configs=10, n_runs=20)


def _config(key: str, ssim: float, mse: float, n: int = 1) -> configs.Configuration:
    return configs.Configuration(
        key=key, params={"k": key}, numbers=tuple(range(n)), runs=((ssim, mse),) * n
    )


def test_a_gain_beyond_the_noise_moves_the_front():
    before = [_config("a", 0.50, 0.050)]
    assert moved(before, [_config("b", 0.60, 0.050)], NOISE, MAXIMIZE)  # SSIM +0.1 >> 0.03
    assert moved(before, [_config("c", 0.50, 0.040)], NOISE, MAXIMIZE)  # MSE -0.01 >> 0.003


def test_a_gain_within_the_noise_does_not_move_the_front():
    before = [_config("a", 0.50, 0.050)]
    assert not moved(before, [_config("b", 0.51, 0.0495)], NOISE, MAXIMIZE)
    assert not moved(before, before, NOISE, MAXIMIZE)
    # a new point must beat every old one: here the second old point matches it
    two = [_config("a", 0.50, 0.050), _config("b", 0.70, 0.080)]
    assert not moved(two, [_config("c", 0.70, 0.079)], NOISE, MAXIMIZE)


def test_the_stopping_trial_is_the_last_move_beyond_the_noise():
    values = [(0.30, 0.09), (0.50, 0.05), (0.505, 0.0499), (0.40, 0.07), (0.80, 0.03)]
    values += [(0.801, 0.0301), (0.70, 0.05), (0.79, 0.031)]
    runs = [configs.Run(i, {"i": i}, v) for i, v in enumerate(values)]
    result = convergence(runs, range(len(runs)), 3, MAXIMIZE, NOISE)
    assert result.stopped_at == 4 and result.trials_since == 3 and result.converged
    early = convergence(runs[:6], range(6), 3, MAXIMIZE, NOISE)
    assert early.stopped_at == 4 and not early.converged
    # pruned trials count as finished trials of the window
    pruned = convergence(runs[:5], range(8), 3, MAXIMIZE, NOISE)
    assert pruned.converged


@pytest.mark.slow
def test_run_until_converged_stops_before_the_budget_and_confirms(tmp_path):
    args = ["--preset", "smoke", "--data", "bundled", "--space", "latent_dim=2:2"]
    args += ["--space", "n_layers=1:1", "--space", "filters=8", "--space", "dense_units=16"]
    args += ["--space", "loss=bce", "--space", "beta=1", "--epochs", "1", "--subset", "200"]
    args += ["--no-pruning", "--no-report", "--workers", "1", "--study", "conv"]
    args += ["--trials", "8", "--until-converged", "--convergence-window", "2", "--confirm", "4"]
    result = run_cli("run", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="conv", storage=f"sqlite:///{tmp_path}/studies/conv.db")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    searched = [t for t in trials if records.CONFIRMS not in t.user_attrs]
    confirmed = [t for t in trials if records.CONFIRMS in t.user_attrs]
    # one configuration: trials 0..2 leave the front where trial 0 put it (window 2)
    assert len(searched) == 3 and len(confirmed) == 2
    assert records.study_attrs(study)[records.CONVERGENCE]["stopped_at"] == 0
    assert records.study_attrs(study)[records.CONVERGENCE]["converged"] is True
    assert "stopped moving beyond the seed noise at trial 0" in result.stderr
