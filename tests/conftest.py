"""Shared pytest fixtures. Server fixtures live in their own modules, registered here."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

pytest_plugins = ["tests.pg_server"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args: str, cwd: Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python -m search ARGS` in a subprocess, as a user types it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (`mount -o size=`) at the new folder `mount`, unmounted afterwards;
    skips the test where mounting is not allowed."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# The tiny training the brief's hostile cases use: seconds per trial.
TINY = (
    *("--preset", "smoke", "--data", "bundled", "--space", "latent_dim=2:2"),
    *("--space", "n_layers=1:1", "--space", "filters=8", "--space", "dense_units=16"),
    *("--epochs", "1", "--subset", "200"),
)


@contextlib.contextmanager
def offline_env(cwd: Path) -> Iterator[dict[str, str]]:
    """An environment with keras' MNIST out of reach however the machine is connected: no
    cache (HOME is a new folder under `cwd`) and every download through a proxy port that
    refuses. TF_CPP_MIN_LOG_LEVEL is left out, as a user's shell has none."""
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "keras_home")}
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        (cwd / "home").mkdir(exist_ok=True)
        env.update(
            HOME=str(cwd / "home"),
            https_proxy=proxy,
            HTTPS_PROXY=proxy,
            http_proxy=proxy,
            HTTP_PROXY=proxy,
            PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        )
        yield env


@contextlib.contextmanager
def dashboard_server(study: str, storage: str, cwd: Path, log: Path) -> Iterator[str]:
    """`python -m search dashboard --port 0` running; yields its base URL, then stops it.

    The system picks the port and the command's first line names it, so no other process
    can take the port between choosing and binding it. The socket is bound before that line
    is printed, so the server accepts connections from then on: no polling with retries.
    """
    command = ["dashboard", "--study", study, "--storage", storage, "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # A file, not a pipe nobody reads: a chatty server must never block on a full pipe.
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "search", *command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # as long as the server is alive (pytest-timeout bounds it), not a fixed time
        while not (found := re.search(r" at (http://\S+?)/ \(Ctrl-C", log.read_text())):
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="session")
def mnist():
    """The bundled 5,000-image subset, split with seed 0 and a 1,000-image training set."""
    from search.data import load_mnist

    return load_mnist("bundled", seed=0, subset=1000)


class SmokeStudy(NamedTuple):
    workdir: Path
    name: str
    storage: str
    artifacts: Path
    output: str
    # A copy of the storage as `run` left it: other tests write reports (and so dashboard
    # notes) into the shared study, and may run first.
    as_run_storage: str


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> SmokeStudy:
    """A real 4-trial study trained here on the smoke preset; pruning fires (rung 1, eta 2)."""
    workdir = tmp_path_factory.mktemp("smoke-study")
    result = run_cli(
        "run",
        "--preset",
        "smoke",
        "--trials",
        "4",
        "--data",
        "bundled",
        "--study",
        "smoke",
        "--eta",
        "2",
        "--grace-epochs",
        "1",
        "--seed",
        "1",
        "--confirm",
        "0",  # exactly the 4 trials asked for (test_verdicts.py covers confirmation runs)
        "--workers",
        "1",  # one process: the pruning verdicts depend on the order trials finish in
        "--no-report",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.copyfile(workdir / "studies" / "smoke.db", workdir / "smoke-as-run.db")
    return SmokeStudy(
        workdir,
        "smoke",
        f"sqlite:///{workdir}/studies/smoke.db",
        workdir / "studies" / "smoke" / "artifacts",
        result.stdout + result.stderr,
        f"sqlite:///{workdir}/smoke-as-run.db",
    )
