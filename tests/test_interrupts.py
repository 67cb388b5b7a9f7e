"""A signal that lands inside TensorFlow or Keras still reads as the interruption it is."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

import search.training
from search.run.objective import Objective
from search.run.options import RunOptions
from search.space import default_space
from search.stopping import STOP
from tests.conftest import TINY


def test_an_error_keras_raises_while_a_stop_is_pending_is_the_interruption(monkeypatch) -> None:
    def interrupted_inside_keras(*args, **kwargs):
        STOP.signum = 2  # the handler ran; Keras turned its KeyboardInterrupt into a TypeError
        raise TypeError("Exception encountered when calling Reshape.call()")

    monkeypatch.setattr(search.training, "train_vae", interrupted_inside_keras)
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = Objective(RunOptions(preset="smoke", pruning=False), default_space(), None, None, 1)
    trial = study.ask()
    try:
        with pytest.raises(KeyboardInterrupt):
            objective(trial)
    finally:
        STOP.signum = None
    assert study.trials[0].user_attrs["fail_reason"].startswith("interrupted")


def test_the_same_error_without_a_stop_stays_a_bug(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(search.training, "train_vae", broken)
    STOP.signum = None
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = Objective(RunOptions(preset="smoke", pruning=False), default_space(), None, None, 1)
    with pytest.raises(TypeError, match="a bug"):
        objective(study.ask())


def _run_until(
    tmp_path, marker: str, signum: int, *extra: str, after: float = 0.0
) -> tuple[int, str]:
    """`run` on a tiny study in a real process; send `signum` `after` seconds once a line
    holding `marker` is printed; the exit code and everything printed."""
    command = [sys.executable, "-m", "search", "run", "--trials", "1", *TINY, "--confirm", "0"]
    process = subprocess.Popen(
        [*command, "--workers", "1", "--study", "sig", *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line arrives as it is printed
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(after)
            process.send_signal(signum)
            break
    rest, _ = process.communicate(timeout=300)
    return process.returncode, "".join(seen) + rest


def _states(tmp_path) -> list[TrialState]:
    storage = f"sqlite:///{tmp_path}/studies/sig.db"
    return [t.state for t in optuna.load_study(study_name="sig", storage=storage).trials]


@pytest.mark.slow
def test_ctrl_c_during_start_up_stops_before_any_trial(tmp_path) -> None:
    """The plan line is printed just before TensorFlow starts: a Ctrl-C then was swallowed
    and the run trained and exited 0 (or died in a traceback inside Keras)."""
    code, output = _run_until(tmp_path, "study 'sig' in ", signal.SIGINT, "--no-report")
    assert code == 130, output[-3000:]
    assert "Traceback" not in output and "trial    1 " not in output, output[-3000:]
    assert "interrupted" in output.splitlines()[-1], output[-3000:]
    assert TrialState.COMPLETE not in _states(tmp_path)
    assert TrialState.RUNNING not in _states(tmp_path)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.slow
def test_a_signal_while_the_report_is_written_leaves_no_half_report(
    tmp_path, signum: int, exit_code: int
) -> None:
    """SIGTERM in the report step died without a word, SIGINT gave a traceback; and a PDF of
    an older study could stay beside the new HTML."""
    folder = tmp_path / "studies" / "sig"
    folder.mkdir(parents=True)
    (folder / "report.pdf").write_bytes(b"%PDF- an older study's report")
    # The summary's last line is printed just before the report is written, which takes
    # seconds (Chromium starts, figures are drawn): a second later the signal lands in it.
    code, output = _run_until(tmp_path, "recommended:", signum, after=1.0)
    assert code == exit_code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("interrupted while the report was written"), output[-3000:]
    assert "python -m search report --study sig" in last
    assert _states(tmp_path) == [TrialState.COMPLETE]
    left = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert not [name for name in left if name.startswith(".partial-")], left
    if (folder / "report.html").exists() and (folder / "report.pdf").exists():
        # the new HTML never stands beside the older study's PDF
        assert (folder / "report.pdf").read_bytes() != b"%PDF- an older study's report"


@pytest.mark.slow
def test_sigterm_during_report_is_one_line_and_no_half_file(smoke_study, tmp_path) -> None:
    """`report` died without a word on SIGTERM (Ctrl-C: a traceback)."""
    out = tmp_path / "out"
    copy = tmp_path / "smoke.db"  # the report writes its dashboard note into the study
    shutil.copyfile(smoke_study.workdir / "smoke-as-run.db", copy)
    command = ["report", "--study", smoke_study.name, "--storage", f"sqlite:///{copy}"]
    command += ["--out", str(out), "--artifacts", str(smoke_study.artifacts)]
    process = subprocess.Popen(
        [sys.executable, "-m", "search", *command],
        cwd=smoke_study.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.0)  # start-up and drawing take longer: the signal lands inside the command
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=300)
    if process.returncode == 0:
        pytest.skip("the report was written before the signal came")  # a very fast machine
    assert process.returncode == 143, errors[-3000:]
    assert errors.strip().splitlines() == ["interrupted: stopped; no file is left half-written"]
    written = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [name for name in written if name.startswith(".partial-")], written


def test_a_stop_in_the_pdf_step_leaves_the_new_html_without_the_older_pdf(
    smoke_study, tmp_path, monkeypatch
) -> None:
    """The signal lands once report.html is written, while the PDF is made."""
    import search.report

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(search.report, "write_pdf", stopped)
    copy = tmp_path / "smoke.db"
    shutil.copyfile(smoke_study.workdir / "smoke-as-run.db", copy)
    study = optuna.load_study(study_name=smoke_study.name, storage=f"sqlite:///{copy}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.pdf").write_bytes(b"%PDF- an older study's report")
    with pytest.raises(KeyboardInterrupt):
        search.report.write_report(study, out, artifact_store_dir=smoke_study.artifacts)
    assert (out / "report.html").exists()
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
