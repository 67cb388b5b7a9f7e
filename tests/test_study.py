"""The study runner end to end: real Optuna, real training on the smoke preset."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image

from search import records
from search.defaults import SWEEP_BASELINE
from search.model import DEFAULTS
from search.space import default_space, parse_sweep, sweep_configurations
from tests.conftest import dashboard_server, run_cli

REQUIRED_ATTRS = {
    "curve",
    "val_ssim",
    "val_mse",
    "train_ssim",
    "train_mse",
    "test_ssim",
    "test_mse",
    "epochs_run",
    "wall_time_s",
    "images_per_s",
    "device",
    "n_params",
    "seed",
    "worker",
    "artifacts",
}


def _load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_smoke_run_stores_objectives_attrs_and_artifacts(smoke_study):
    study = _load(smoke_study.storage, smoke_study.name)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["SSIM", "MSE"]
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 4
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete, "at least the first trial completes"
    for trial in complete:
        assert set(records.trial_attrs(trial)) >= REQUIRED_ATTRS
        assert trial.values == [trial.user_attrs["val_ssim"], trial.user_attrs["val_mse"]]
        assert len(records.trial_attrs(trial)["curve"]) == trial.user_attrs["epochs_run"] == 2
        _assert_artifacts_open(smoke_study.artifacts, trial)
    attrs = records.study_attrs(study)
    assert attrs["created_by"] == "vae-search"
    assert set(attrs["search_space"]) == set(default_space())
    assert attrs["data"]["bundled_subset"] is True
    assert attrs["budget"]["preset"] == "smoke" and attrs["pruning"]["rungs"] == [1]
    assert attrs["pruning"]["noise_margin_sd"] == 0  # smoke's default: no guard
    assert records.read_runs(attrs)[0]["command"].startswith("python -m search run")
    # the Pareto trials' weights are kept (default --keep-models pareto)
    assert any("model" in records.trial_attrs(t)["artifacts"] for t in study.best_trials)
    assert "Pareto front" in smoke_study.output


def _assert_artifacts_open(folder: Path, trial: optuna.trial.FrozenTrial) -> None:
    """Each artifact opens as what it claims to be, with the shape the report relies on."""
    ids = records.trial_attrs(trial)["artifacts"]
    with Image.open(folder / ids["grid"]) as grid:  # 10x10 originals | gap | reconstructions
        assert grid.size == (2 * 280 + 8, 280) and grid.mode == "L"
    with Image.open(folder / ids["prior_samples"]) as samples:
        assert samples.size == (280, 280)
    with np.load(folder / ids["latent"]) as latent:
        z_mean, labels = latent["z_mean"], latent["labels"]
    assert z_mean.shape == (len(labels), trial.params["latent_dim"]) and len(labels) > 100
    assert np.isfinite(z_mean).all() and set(labels.tolist()) == set(range(10))
    if "model" in ids:
        # the store names files by id; Keras wants the `.weights.h5` suffix to load them
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(shutil.copy(folder / ids["model"], Path(tmp) / "model.weights.h5"))
            _assert_weights_load(weights, {**trial.params, "predictor": False})


def _assert_weights_load(path: Path, params: dict) -> None:
    """The weights load into the model its parameters build, and it reconstructs digits."""
    from search.model import build_vae

    model = build_vae(params)
    model.load_weights(path)
    out = model(np.zeros((1, 28, 28, 1), np.float32), training=False)["reconstruction"]
    assert tuple(out.shape) == (1, 28, 28, 1)


def test_pruning_fires_in_a_real_study(smoke_study):
    study = _load(smoke_study.storage, smoke_study.name)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, smoke_study.output
    for trial in pruned:
        assert trial.user_attrs["pruned_at_epoch"] == 1
        assert trial.user_attrs["pruned_reason"].startswith("rank ")
        assert "1" in records.trial_attrs(trial)["rung_values"]


def test_sweep_baseline_is_the_model_default():
    assert {k: DEFAULTS[k] for k in SWEEP_BASELINE} == SWEEP_BASELINE


def test_sweep_configurations_fix_everything_but_the_swept_parameter():
    space = default_space()
    name, values = parse_sweep("latent_dim=1,2,4,6,8,10", space)
    configs = sweep_configurations(name, values, repeats=2, space=space)
    assert len(configs) == 12
    assert [c[0]["latent_dim"] for c in configs[::2]] == [1, 2, 4, 6, 8, 10]
    assert all(
        {k: v for k, v in c[0].items() if k != "latent_dim"}
        == {k: v for k, v in SWEEP_BASELINE.items() if k != "latent_dim"}
        for c in configs
    )
    assert [c[1]["repeat"] for c in configs[:2]] == [0, 1]


@pytest.mark.slow
def test_resume_adds_trials_and_sweep_trials_are_tagged(tmp_path):
    args = [
        "--preset",
        "smoke",
        "--data",
        "bundled",
        "--study",
        "resume",
        "--no-report",
        "--subset",
        "128",
        "--epochs",
        "1",
        "--no-pruning",
        "--confirm",
        "0",
        "--workers",
        "1",  # the single-process default storage, SQLite
    ]
    first = run_cli("run", *args, "--sweep", "n_layers=1,3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    study = _load(f"sqlite:///{tmp_path}/studies/resume.db", "resume")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    tags = sorted((t.user_attrs["sweep"]["value"], t.params["n_layers"]) for t in study.trials)
    assert tags == [(1, 1), (3, 3)]
    assert all(t.params["latent_dim"] == SWEEP_BASELINE["latent_dim"] for t in study.trials)

    # the second run also writes the report, as a user's run does
    second = run_cli("run", *[a for a in args if a != "--no-report"], "--trials", "1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    for name in ("report.html", "report.pdf"):
        assert (tmp_path / "studies" / "resume" / name).stat().st_size > 10_000
        assert f"studies/resume/{name}" in second.stdout
    study = _load(f"sqlite:///{tmp_path}/studies/resume.db", "resume")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert len(records.read_runs(records.study_attrs(study))) == 2
    assert "2 finished trials, running 1 more" in second.stderr


BAD_RUNS = {
    "zero trials": ["--trials", "0"],
    "negative trials": ["--trials", "-3"],
    "text trials": ["--trials", "abc"],
    "empty study name": ["--study", ""],
    "slash in name": ["--study", "a/b"],
    "dots in name": ["--study", ".."],
    "path characters": ["--study", "x;rm -rf"],
    "unknown sampler": ["--sampler", "grid"],
    "unknown preset": ["--preset", "huge"],
    "malformed sweep": ["--sweep", "latent_dim"],
    "sweep outside space": ["--sweep", "latent_dim=0,64"],
    "sweep unknown param": ["--sweep", "depth=1,2"],
    "negative timeout": ["--timeout", "-5"],
    "bad storage url": ["--storage", "nosuchdb://x"],
    "workers zero": ["--workers", "0"],
    "bad space": ["--space", "latent_dim=9:2"],
    "negative confirm": ["--confirm", "-1"],
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(tmp_path, monkeypatch, capsys, case):
    # In this process, through the CLI's entry point: every case fails before TensorFlow
    # would load, so a subprocess per case would only add interpreter start-ups.
    from search import cli

    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "studies"
    existing.mkdir()
    (existing / "keep.db").write_bytes(b"stored study stays as it is")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = cli.main(
        ["run", "--preset", "smoke", "--data", "bundled", "--no-report", *BAD_RUNS[case]]
    )
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (existing / "keep.db").read_bytes() == b"stored study stays as it is"


def test_bad_input_through_python_m_search_is_one_line_and_exit_2(tmp_path):
    """The same contract from a real process: no traceback, nothing written."""
    result = run_cli("run", "--trials", "0", "--no-report", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    # Ctrl-C; what Kubernetes and Slurm send; a closed terminal (it left the trial RUNNING)
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
@pytest.mark.slow
def test_a_signal_leaves_a_consistent_study_that_resumes(tmp_path, signum, exit_code):
    args = [
        "run",
        "--preset",
        "smoke",
        "--data",
        "bundled",
        "--study",
        "interrupt",
        "--no-report",
        "--subset",
        "256",
        "--epochs",
        "2",
        "--no-pruning",
        "--confirm",
        "0",
        "--workers",
        "1",  # one process takes the signal (test_distributed.py covers workers)
    ]
    env_cmd = [sys.executable, "-m", "search", *args, "--trials", "5"]
    process = subprocess.Popen(
        env_cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    storage = f"sqlite:///{tmp_path}/studies/interrupt.db"
    # wait until a trial is running (one finished and the next started), then send the signal
    while True:
        assert process.poll() is None, process.communicate()[0][-2000:]
        time.sleep(0.5)
        try:
            trials = _load(storage, "interrupt").trials
        except Exception:
            continue
        if any(t.state == TrialState.COMPLETE for t in trials) and any(
            t.state == TrialState.RUNNING and "worker" in t.user_attrs for t in trials
        ):
            break
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == exit_code, output[-2000:]
    printed = re.search(
        r"resume with: python -m search run (--study interrupt --trials .*)", output
    )
    assert printed, output[-2000:]
    # it names the stored budget (it did not, and was refused under the default preset's)
    assert printed.group(1).endswith("--preset smoke --epochs 2 --subset 256 --data bundled")
    study = _load(storage, "interrupt")
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith("interrupted")
    done = len(study.get_trials(states=(TrialState.COMPLETE,)))
    if signum != signal.SIGTERM:
        return  # both signals take the same path from here; resuming is checked once

    # the printed command, with one trial and no report (neither is part of the budget)
    resume = ["run", *shlex.split(printed.group(1)), "--trials", "1", "--confirm", "0"]
    resumed = run_cli(*resume, "--no-report", "--no-pruning", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(_load(storage, "interrupt").get_trials(states=(TrialState.COMPLETE,))) == done + 1


def test_dashboard_serves_the_study_with_metric_names_and_artifacts(smoke_study, tmp_path):
    # straight to the local server, whatever proxy the environment names
    urlopen = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    log = tmp_path / "dashboard.log"
    with dashboard_server(smoke_study.name, smoke_study.storage, smoke_study.workdir, log) as base:
        with urlopen(f"{base}/api/studies", timeout=60) as response:
            studies = json.load(response)
        summary = next(s for s in studies["study_summaries"] if s["study_name"] == smoke_study.name)
        assert [d.lower() for d in summary["directions"]] == ["maximize", "minimize"]
        with urlopen(f"{base}/api/studies/{summary['study_id']}?after=0", timeout=60) as response:
            detail = json.load(response)
        assert detail["objective_names"] == ["SSIM", "MSE"]
        complete = [t for t in detail["trials"] if t["state"].lower() == "complete"]
        artifacts = complete[0]["artifacts"]
        grid = next(a for a in artifacts if a["filename"] == "grid.png")
        study_id, trial_id = summary["study_id"], complete[0]["trial_id"]
        url = f"{base}/artifacts/{study_id}/{trial_id}/{grid['artifact_id']}"
        with urlopen(url, timeout=60) as response:
            assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_studies_lists_counts_by_state(smoke_study):
    result = run_cli("studies", cwd=smoke_study.workdir, timeout=120)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("smoke "))
    assert row.split()[-5:] == [str(x) for x in _state_counts(smoke_study)]


def _state_counts(smoke_study) -> list[int]:
    study = _load(smoke_study.storage, smoke_study.name)
    return [sum(1 for t in study.trials if t.state == s) for s in TrialState]


@pytest.mark.slow
def test_train_cli_prints_table_and_saves_grid(tmp_path):
    result = run_cli(
        "train",
        "--latent-dim",
        "4",
        "--layers",
        "2",
        "--filters",
        "8",
        "--dense-units",
        "16",
        "--loss",
        "mse",
        "--epochs",
        "1",
        "--subset",
        "256",
        "--data",
        "bundled",
        "--save",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for label in ("validation SSIM", "validation MSE", "train SSIM", "train MSE", "device"):
        assert label in result.stdout
    with Image.open(tmp_path / "out" / "grid.png") as grid:
        assert grid.size == (2 * 280 + 8, 280)
    params = {"latent_dim": 4, "n_layers": 2, "filters": 8, "dense_units": 16, "loss": "mse"}
    _assert_weights_load(tmp_path / "out" / "model.weights.h5", params)


@pytest.mark.parametrize("command", ["run", "train", "report", "dashboard", "studies"])
def test_help_explains_every_command(command, capsys):
    from search import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: search {command}")
    if command == "run":
        assert "--sweep" in out and "VAE_SEARCH_STORAGE" in out


@pytest.mark.slow
def test_report_command_on_a_trained_study(smoke_study, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "report"
    result = run_cli(
        "report",
        "--study",
        smoke_study.name,
        "--storage",
        smoke_study.storage,
        "--out",
        str(out),
        cwd=smoke_study.workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    html = (out / "report.html").read_text()
    reader = PdfReader(out / "report.pdf")
    text = " ".join(page.extract_text() for page in reader.pages)
    study = _load(smoke_study.storage, smoke_study.name)
    best = max(t.values[0] for t in study.get_trials(states=(TrialState.COMPLETE,)))
    # this study's own numbers, not template text, in both renderings
    for rendering in (html, text):
        assert f"{best:.3f}" in rendering or f"{best:.4f}" in rendering
    bad = run_cli(
        "report",
        "--study",
        smoke_study.name,
        "--storage",
        smoke_study.storage,
        "--format",
        "docx",
        cwd=smoke_study.workdir,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_pruning_defaults_come_from_the_preset_unless_given() -> None:
    from search.pruning import ParetoPrunerConfig
    from search.run.options import RunOptions
    from search.run.setup import pruner_config

    # bench/results/pruning.md chose these per number of epochs
    assert pruner_config(RunOptions(preset="quick"), 6) == ParetoPrunerConfig(6, 3, 3)
    full = pruner_config(RunOptions(preset="full"), 30)
    assert full == ParetoPrunerConfig(30, 4, 2, envelope_min_complete=6)
    assert full.rungs == [4, 8, 16]
    given = RunOptions(preset="full", grace_epochs=1, eta=2, noise_margin=0.0, envelope=3)
    assert pruner_config(given, 30) == ParetoPrunerConfig(30, 1, 2, 0.0, 3)
