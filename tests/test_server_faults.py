"""Faults of a storage server in the middle of work, and faults inside `--workers` children.

A PostgreSQL server that dies under a `run` is a fault of the machine, as a full disk is: one
`error:` line, exit 3, the command that resumes printed, no traceback (Optuna's heartbeat
thread included), and once the server is back that command resumes the study. A fault in a
`--workers N` child reaches the user through the parent the same way. Real servers, real
training on tiny settings (issue 20, item 5).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
from optuna.trial import TrialState

from search import records
from search.faults import EXIT_FAULT, fault_reason
from tests.conftest import TINY, run_cli, small_tmpfs
from tests.pg_server import PASSWORD, PostgresServer

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
# Trials long enough (a few seconds) for the server to die under one of them.
LONGER = tuple("40" if i and TINY[i - 1] == "--epochs" else a for i, a in enumerate(TINY))
BEATS = ("--heartbeat-interval", "1", "--grace-period", "3")


def _errors(text: str) -> list[str]:
    assert "Traceback" not in text and "Exception in thread" not in text, text[-4000:]
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may kill and start again. Durable: a commit is
    on disk before it is acknowledged (the shared fixture's asynchronous commits would lose
    the last ones to a SIGKILL, and the study would resume from an older state)."""
    server = PostgresServer(durable=True).start()
    try:
        yield server
    finally:
        server.stop()


def _kill(server: PostgresServer) -> None:
    """SIGKILL the postmaster and its backends at once: a crashed or switched-off server."""
    process = server._process
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _running(url: str, number: int) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM trials WHERE number = %s AND state = 'RUNNING'", (number,)
        ).fetchone()
    return bool(row and row[0])


# -- what counts as a fault ------------------------------------------------------------------


def test_a_refused_or_dropped_connection_is_a_fault_and_other_errors_are_not(
    postgres_server: PostgresServer,
) -> None:
    import sqlalchemy

    with socket.socket() as closed:  # bound, never listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        nowhere = f"postgresql://u:p@127.0.0.1:{closed.getsockname()[1]}/x"
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(nowhere)
        # SQLAlchemy's wrapping (what Optuna's storage raises) is seen through
        with pytest.raises(sqlalchemy.exc.OperationalError) as wrapped:
            sqlalchemy.create_engine(nowhere).connect()
    reason = fault_reason(refused.value)
    assert reason is not None and "connection refused" in reason, reason
    assert fault_reason(wrapped.value) == reason
    # a server that ends the session (a fast shutdown does this to every session)
    with psycopg.connect(postgres_server.url()) as conn:
        pid = conn.info.backend_pid
        with postgres_server._admin() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as dropped:
            conn.execute("SELECT 1")
    reason = fault_reason(dropped.value)
    assert reason is not None and "PostgreSQL storage is out of reach" in reason, reason
    # a cancelled statement or bad SQL is no fault of the machine: it stays a traceback
    with psycopg.connect(postgres_server.url()) as conn:
        with pytest.raises(psycopg.OperationalError) as cancelled:
            conn.execute("SET statement_timeout = 1; SELECT pg_sleep(1)")
        assert cancelled.value.sqlstate == "57014"
    assert fault_reason(cancelled.value) is None
    with psycopg.connect(postgres_server.url()) as conn, pytest.raises(psycopg.Error) as bad:
        conn.execute("SELECT * FROM no_such_table")
    assert fault_reason(bad.value) is None


# -- a server that dies under a run --------------------------------------------------------


@pytest.mark.slow
def test_a_postgres_server_killed_mid_run_is_one_line_and_the_study_resumes(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.url()
    log = tmp_path / "run.log"
    argv = ["run", "--trials", "3", *LONGER, "--no-pruning", "--confirm", "0", "--no-report"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "search", *argv, "--storage", url, *BEATS],
            cwd=tmp_path,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        # trial 0 is stored and trial 1 is training: the server dies under it
        while "trial    0" not in log.read_text() or not _running(url, 1):
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        _kill(own_server)
        code = process.wait(timeout=300)
    finally:
        process.kill()
    text = log.read_text()
    assert code == EXIT_FAULT, text[-3000:]
    errors = _errors(text)
    assert len(errors) == 1, text[-3000:]
    assert "stopped by a fault: the PostgreSQL storage is out of reach (connection" in errors[0]
    assert "trial 1 could not be marked FAIL" in errors[0]
    assert PASSWORD not in text
    resume = errors[0].split("resume with: ", 1)[1].split()
    assert resume[:3] == ["python", "-m", "search"] and "--trials" in resume
    assert resume[resume.index("--trials") + 1] == "2"
    # the server is back: the printed command resumes the study (the password, redacted
    # in what is printed, is the user's to give again)
    own_server._launch()
    resume = [url if "***" in part else part for part in resume]
    again = run_cli(*resume[3:], *BEATS, "--confirm", "0", "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="mnist-vae", storage=url).trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3, states
    # the trial the server died under was failed as a dead worker's, not left RUNNING
    assert trials[1].state == TrialState.FAIL
    assert "no heartbeat" in trials[1].user_attrs[records.FAIL_REASON]


# -- faults inside `--workers` children, seen through the parent ----------------------------


def _parent_lines(text: str, workers: int) -> list[str]:
    """The parent's `error:` lines; at most one `[wI] error:` line per child, no traceback."""
    for index in range(workers):
        child = [line for line in text.splitlines() if line.startswith(f"[w{index}] error:")]
        assert len(child) <= 1, text[-4000:]
        assert all("resume with" not in line for line in child)  # its command would not
    return _errors(text)


def _resume(line: str) -> list[str]:
    resume = line.split("resume with: ", 1)[1].split()
    assert resume[:5] == ["python", "-m", "search", "run", "--workers"], resume
    return resume[3:]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 KiB tmpfs: a study's database fits, one trial's artifacts do not."""
    with small_tmpfs(tmp_path / "disk", "400k") as mount:
        yield mount


@pytest.mark.slow
def test_a_full_disk_in_workers_is_one_line_from_the_parent_and_resumes(
    small_disk: Path,
) -> None:
    url = f"sqlite:///{small_disk}/s.db"
    done = run_cli(
        "run", "--workers", "2", "--trials", "4", *TINY, "--confirm", "0", "--no-report",
        "--storage", url, "--artifacts", str(small_disk / "artifacts"), cwd=small_disk.parent,
    )  # fmt: skip
    text = done.stdout + done.stderr
    assert done.returncode == EXIT_FAULT, text[-3000:]
    assert "No space left on device" in text
    errors = _parent_lines(text, 2)
    assert len(errors) == 1 and "a worker stopped by a fault" in errors[0], text[-3000:]
    assert "exited with code" not in text  # the workers' own lines said it
    states = [t.state for t in optuna.load_study(study_name="mnist-vae", storage=url).trials]
    assert TrialState.RUNNING not in states and TrialState.COMPLETE not in states, states
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    again = run_cli(*_resume(errors[0]), "--confirm", "0", "--no-report", cwd=small_disk.parent)
    assert again.returncode == 0, again.stderr[-3000:]
    states = [t.state for t in optuna.load_study(study_name="mnist-vae", storage=url).trials]
    assert states.count(TrialState.COMPLETE) == 4, states


@pytest.mark.slow
def test_a_postgres_server_killed_under_workers_is_one_line_from_the_parent(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    url = own_server.url()
    log = tmp_path / "run.log"
    argv = ["run", "--workers", "2", "--trials", "4", *LONGER, "--no-pruning", "--confirm", "0"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "search", *argv, "--no-report", "--storage", url, *BEATS],
            cwd=tmp_path,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        while "] trial    " not in log.read_text() or not (_running(url, 2) or _running(url, 3)):
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        _kill(own_server)
        code = process.wait(timeout=300)
    finally:
        process.kill()
    text = log.read_text()
    assert code == EXIT_FAULT, text[-3000:]
    errors = _parent_lines(text, 2)
    assert len(errors) == 1 and "a worker stopped by a fault" in errors[0], text[-3000:]
    assert "[w0] error: stopped by a fault: the PostgreSQL storage" in text
    assert "its --trials lowered by the trials the workers finished" in errors[0]
    assert PASSWORD not in text
    own_server._launch()
    resume = [url if "***" in part else part for part in _resume(errors[0].split(", its")[0])]
    again = run_cli(*resume, *BEATS, "--confirm", "0", "--no-report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="mnist-vae", storage=url).trials
    states = [t.state for t in trials]
    # the resume trained what the printed count asked; the trials the server died under are
    # failed as dead workers' (retried), none is left RUNNING
    finished = [s for s in states if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    reasons = [t.user_attrs.get(records.FAIL_REASON) for t in trials]
    assert len(finished) >= 4 and TrialState.RUNNING not in states, (states, reasons, text)
    assert all(
        "no heartbeat" in t.user_attrs.get(records.FAIL_REASON, "no heartbeat")
        for t in trials
        if t.state == TrialState.FAIL
    )
