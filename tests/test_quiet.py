"""A quiet start: no TensorFlow start-up lines at default verbosity, real errors still shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from search.quiet import START_UP_NOISE
from tests.conftest import offline_env

TINY_TRAIN = (
    "train",
    "--epochs",
    "1",
    "--subset",
    "64",
    "--latent-dim",
    "2",
    "--filters",
    "4",
    "--dense-units",
    "8",
)


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if START_UP_NOISE.search(line)]


def _cli_as_typed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m search ARGS` without TF_CPP_MIN_LOG_LEVEL, which the suite sets for itself
    (conftest) and a user's shell does not."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_filter_drops_start_up_notices_and_keeps_real_errors(tmp_path):
    """Lines written to descriptor 2 from below Python: notices go, anything else stays."""
    script = textwrap.dedent(
        """
        import os, sys
        from search.quiet import start_up_lines_filtered
        try:
            with start_up_lines_filtered():
                os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. ...\\n")
                os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: ...\\n")
                os.write(2, b"E0000 some_kernel.cc:1] real trouble: out of memory\\n")
                print("a Python warning", file=sys.stderr)
                raise RuntimeError("the import failed")
        except RuntimeError as error:
            print(f"raised: {error}", file=sys.stderr)
        os.write(2, b"after the window: oneDNN custom operations are on\\n")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "E0000 some_kernel.cc:1] real trouble: out of memory",
        "a Python warning",
        "raised: the import failed",
        "after the window: oneDNN custom operations are on",
    ]


@pytest.mark.slow
def test_train_starts_quietly_and_verbose_brings_the_library_lines_back(tmp_path):
    quiet = _cli_as_typed(*TINY_TRAIN, "--data", "auto", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    output = quiet.stdout + quiet.stderr
    assert _noise(output) == []
    assert "Downloading data from" not in output
    assert "validation SSIM" in quiet.stdout
    # Offline, the fallback to the bundled subset is still said, in one line.
    if "keras MNIST unavailable" in quiet.stderr:
        assert sum("keras MNIST unavailable" in line for line in quiet.stderr.splitlines()) == 1

    verbose = _cli_as_typed(*TINY_TRAIN, "--data", "bundled", "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert _noise(verbose.stderr), verbose.stderr


@pytest.mark.slow
def test_every_worker_starts_quietly(tmp_path):
    result = _cli_as_typed(
        "run",
        "--workers",
        "2",
        "--trials",
        "2",
        "--preset",
        "smoke",
        "--epochs",
        "1",
        "--subset",
        "64",
        "--data",
        "bundled",
        "--study",
        "quiet",
        "--no-report",
        "--space",
        "filters=4,8",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "[w0]" in output and "[w1]" in output
    assert _noise(output) == []


TINY_RUN = (
    "--preset",
    "smoke",
    "--space",
    "latent_dim=2:2",
    "--space",
    "n_layers=1:1",
    "--space",
    "filters=8",
    "--space",
    "dense_units=16",
    "--epochs",
    "1",
    "--subset",
    "200",
)
# Every line a quiet `run` writes to stderr starts so (docs/cli.md, "What a run prints").
RUN_LOG_LINES = re.compile(
    r"^(keras MNIST unavailable \(|study '|data: |device: |convergence: |trial +\d)"
)
RAW_LOGGING_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:")


def _offline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command with keras' MNIST out of reach (conftest.offline_env)."""
    with offline_env(cwd) as env:
        return subprocess.run(
            [sys.executable, "-m", "search", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.mark.slow
def test_an_offline_run_prints_only_our_lines(tmp_path):
    """Seen: `Downloading data from https://storage.googleapis.com/...` on every `run` (keras'
    get_file through absl's logger, which run's INFO logging printed) and the fallback notice
    as `WARNING:search.data:keras MNIST unavailable ...`."""
    result = _offline(
        "run", "--trials", "1", *TINY_RUN, "--data", "auto", "--confirm", "0", "--no-report",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Downloading data from" not in output
    assert not [line for line in output.splitlines() if RAW_LOGGING_PREFIX.match(line)]
    lines = result.stderr.splitlines()
    assert [line for line in lines if not RUN_LOG_LINES.match(line)] == [], result.stderr
    assert sum(line.startswith("keras MNIST unavailable (") for line in lines) == 1
    assert "using the bundled 5,000-image subset" in result.stderr


@pytest.mark.slow
def test_train_says_the_fallback_in_our_words(tmp_path):
    result = _offline(*TINY_TRAIN, "--data", "auto", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stderr.splitlines()[0]
    assert first.startswith("keras MNIST unavailable ("), result.stderr
    assert "Downloading data from" not in result.stdout + result.stderr
