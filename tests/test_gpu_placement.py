"""Worker placement on GPU machines, proven on this CPU machine with a fake `nvidia-smi`.

The fake prints a listing in the format of `nvidia-smi -L` (plain GPUs, GPUs in MIG mode);
everything else is real: the parser, `CUDA_VISIBLE_DEVICES` handling, the `--workers` launcher
and real worker processes that train on the CPU (TensorFlow sees no GPU here, and says so).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.errors import UsageError
from search.storage import open_storage
from search.workers import (
    ASSIGNED_DEVICE_ENV,
    GpuDevice,
    detect_gpus,
    plan_workers,
    worker_environments,
)

REPO = Path(__file__).resolve().parents[1]

FOUR_GPUS = "\n".join(
    f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}{i}{i}{i}aaaa-0000-1111-2222-33334444555{i})"
    for i in range(4)
)
# GPU 0 in MIG mode with two slices, GPU 1 whole (driver 5xx layout: two-space indent).
MIG_BOX = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
  MIG 3g.20gb     Device  1: (UUID: MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-0a1b2c3d-1111-2222-3333-444455556666)
"""


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Put an `nvidia-smi` printing the given listing first on PATH; returns a setter."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    listing = bin_dir / "listing.txt"
    script = bin_dir / "nvidia-smi"
    script.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] || exit 9\ncat "{listing}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def use(text: str) -> Path:
        listing.write_text(text)
        return bin_dir

    return use


def test_plain_gpus_are_parsed_with_model_and_uuid(fake_smi) -> None:
    fake_smi(FOUR_GPUS)
    gpus = detect_gpus()
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert gpus[2].name == "NVIDIA H100 80GB HBM3"
    assert gpus[2].uuid.startswith("GPU-2222")
    assert gpus[2].describe() == f"GPU 2 (NVIDIA H100 80GB HBM3, {gpus[2].uuid})"


def test_mig_slices_are_handed_out_one_per_worker_by_uuid(fake_smi) -> None:
    fake_smi(MIG_BOX)
    devices = detect_gpus()
    # GPU 0 runs nothing as a whole in MIG mode: its two slices stand in for it.
    assert [(d.index, d.mig_profile, d.mig_device) for d in devices] == [
        (0, "3g.20gb", 0),
        (0, "3g.20gb", 1),
        (1, None, None),
    ]
    envs = worker_environments(3, devices)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == [
        "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",
        "MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb",
        "1",
    ]
    assert envs[1][ASSIGNED_DEVICE_ENV].startswith("GPU 0 MIG 3g.20gb #1 (NVIDIA A100")
    # `--gpus 0` on a MIG GPU means its slices; the default count is one worker per slice
    assert plan_workers(None, [0]) == (2, devices[:2])
    assert plan_workers(None) == (3, devices)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb", [(0, 1)]),  # Kubernetes, Slurm on MIG
        ("MIG-cba663e8", [(0, 1)]),  # a unique prefix, as CUDA accepts
        ("GPU-0a1b2c3d-1111-2222-3333-444455556666", [(1, None)]),
        ("GPU-5d5ba0d6", [(0, 0), (0, 1)]),  # a MIG GPU by its own UUID: its slices
        ("1,0", [(1, None), (0, 0), (0, 1)]),  # order kept
        ("1,7,0", [(1, None)]),  # CUDA stops at the first entry that names nothing
        ("", []),
        ("-1", []),
        ("NoDevFiles", []),
    ],
)
def test_an_existing_cuda_visible_devices_is_respected(
    fake_smi, monkeypatch: pytest.MonkeyPatch, visible: str, expected: list
) -> None:
    fake_smi(MIG_BOX)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert [(d.index, d.mig_device) for d in detect_gpus()] == expected


def test_workers_per_gpu_and_the_checks_of_the_parent(fake_smi) -> None:
    fake_smi(FOUR_GPUS)
    n, devices = plan_workers(None, [0, 2], workers_per_gpu=3)
    assert n == 6 and [d.index for d in devices] == [0, 2]
    envs = worker_environments(n, devices)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "2", "0", "2", "0", "2"]
    assert all(e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for e in envs)
    with pytest.raises(UsageError, match=r"GPU 5 not found \(GPUs present: 0, 1, 2, 3\)"):
        plan_workers(None, [0, 5])
    with pytest.raises(UsageError, match="twice"):
        plan_workers(None, [2, 2])
    with pytest.raises(UsageError, match="workers-per-gpu"):
        plan_workers(None, None, workers_per_gpu=0)


def test_a_cpu_worker_does_not_inherit_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ASSIGNED_DEVICE_ENV, "GPU 9 (left over)")
    env = worker_environments(1, [])[0]
    assert ASSIGNED_DEVICE_ENV not in env
    gpu = GpuDevice(3, "NVIDIA L4", "GPU-abc", gpu_uuid="GPU-abc")
    assert worker_environments(1, [gpu])[0]["CUDA_VISIBLE_DEVICES"] == "3"


# What the launching parent runs; afterwards it says whether it ever imported TensorFlow
# (importing is the first step of initialising it, and a CUDA context would follow).
PARENT = """
import sys
from search.cli import main
code = main(sys.argv[1:])
print("PARENT_IMPORTED_TENSORFLOW", "tensorflow" in sys.modules, flush=True)
sys.exit(code)
"""


BACKENDS_HERE = [
    pytest.param(name, marks=pytest.mark.skipif(not importlib.util.find_spec(name), reason=why))
    for name, why in (("tensorflow", "-"), ("jax", "jax is not installed"))
]
SHOWN = {"tensorflow": "TensorFlow", "jax": "JAX"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_run_on_gpus_0_and_2_trains_both_trials_with_two_told_workers(
    fake_smi, tmp_path: Path, backend: str
) -> None:
    bin_dir = fake_smi(FOUR_GPUS)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    args = [
        "run", "--gpus", "0,2", "--preset", "smoke", "--trials", "2", "--data", "bundled",
        "--subset", "64", "--epochs", "1", "--no-pruning", "--keep-models", "none",
        "--no-report", "--study", "gpus", "--seed", "3", "--backend", backend,
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", PARENT, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "PARENT_IMPORTED_TENSORFLOW False" in done.stdout, out[-4000:]
    assert "starting 2 workers (w0: GPU 0 (NVIDIA H100 80GB HBM3, GPU-0000" in done.stdout
    for worker, gpu in (("w0", 0), ("w1", 2)):
        told = [line for line in out.splitlines() if line.startswith(f"[{worker}] ")]
        device_lines = [line for line in told if "device: " in line]
        assert device_lines, "\n".join(told)
        # Named before training; here TensorFlow has no GPU and the worker says so.
        assert f"GPU {gpu} (NVIDIA H100 80GB HBM3, GPU-{gpu}{gpu}{gpu}{gpu}" in device_lines[0]
        assert f"{SHOWN[backend]} sees no GPU" in device_lines[0]
    assert "not found" not in out

    storage = open_storage(f"journal:///{tmp_path}/studies/gpus.log")
    study = optuna.load_study(study_name="gpus", storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    sampled = [t for t in complete if "confirms" not in t.user_attrs]
    assert len(sampled) == 2
    # the confirmation runs of the front were trained by workers too, never by the parent
    assert all("GPU " in t.user_attrs["device"] for t in complete)
    devices = {t.user_attrs["device"] for t in complete}
    assert any("GPU 0 (" in d for d in devices) and any("GPU 2 (" in d for d in devices)
    run_record = records.read_runs(records.study_attrs(study))[-1]
    assert run_record["device"].startswith("w0: GPU 0 (NVIDIA H100"), json.dumps(run_record)
    assert "w1: GPU 2 (" in run_record["device"]


def test_the_placement_and_determinism_options_reach_the_run() -> None:
    from search.cli import build_parser
    from search.run import RunOptions

    args = build_parser().parse_args(
        ["run", "--gpus", "0,2", "--workers-per-gpu", "2", "--deterministic"]
    )
    options = RunOptions(
        **{k: v for k, v in vars(args).items() if k in RunOptions.__dataclass_fields__}
    )
    assert (options.gpus, options.workers_per_gpu, options.deterministic) == ([0, 2], 2, True)
    with pytest.raises(UsageError, match="workers-per-gpu"):
        build_parser().parse_args(["run", "--workers-per-gpu", "0"])
