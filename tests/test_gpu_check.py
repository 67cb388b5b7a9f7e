"""bench/gpu_check.py on a machine without a GPU: every step runs at tiny sizes on the CPU,
says no GPU was found, and writes its report only where told (never bench/results/gpu.*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "bench" / "gpu_check.py"


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}  # no nvidia-smi
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(
        [sys.executable, str(CHECK), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    before = sorted((ROOT / "bench" / "results").iterdir())
    done = check("--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "No GPU found" in done.stdout
    found = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert found["gpu"] is False
    (name, result), *others = found["backends"].items()
    assert name == "tensorflow" and not others  # auto: the first installed backend
    assert result["devices"]["gpus"] == [] and result["devices"]["devices"]
    rows = result["throughput"]["rows"]
    assert len(rows) == 8 and all(r["images_per_s"] > 0 for r in rows), rows
    assert {r["precision"] for r in rows} == {"float32", "mixed_float16"}
    assert {r["steps_per_execution"] for r in rows} == {1, 4}
    assert result["ssim"]["float64_max_difference"] < 1e-6, result["ssim"]
    assert result["ssim"]["float32_max_difference"] < 1e-4, result["ssim"]
    for study, workers in zip(result["studies"], (1, 2), strict=True):
        assert study["workers"] == workers and study["trials"] == workers, study
        assert study["every_worker_logged_its_device"], study
        assert len(study["worker_devices"]) == workers
        assert study["trials_per_hour"] > 0
    report = (tmp_path / "out" / "gpu.md").read_text()
    assert "No GPU found" in report and "images/s" in report and "trials/hour" in report
    assert sorted((ROOT / "bench" / "results").iterdir()) == before  # nothing in the repo


def test_an_uninstalled_backend_is_refused(tmp_path: Path) -> None:
    done = check("--backend", "theano", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: backend not installed or unknown: theano")
    assert list(tmp_path.iterdir()) == []
