"""A quiet start: no TensorFlow start-up lines at default verbosity, real errors still shown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from search.quiet import START_UP_NOISE

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
