"""Training and a study under each Keras backend that is installed (JAX is in the test extra,
so CI runs it; PyTorch only where someone installed it), with TensorFlow blocked from import
under the others: the GPU box the check is carried to has JAX and PyTorch but no TensorFlow."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search import backend

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = (
    "--epochs", "1", "--subset", "128", "--data", "bundled",
    "--latent-dim", "2", "--layers", "1", "--filters", "4", "--dense-units", "8",
)  # fmt: skip
TINY_RUN = (
    "--preset", "smoke", "--data", "bundled", "--no-report", "--subset", "128", "--epochs", "1",
    "--no-pruning", "--confirm", "0", "--workers", "1",
)  # fmt: skip

# Runs `python -m search ARGS`; after "block", every `import tensorflow` fails, as where it is
# absent; after "see", TensorFlow could be imported, and the run says whether it was.
WITHOUT_TENSORFLOW = """
import runpy, sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("tensorflow is blocked in this test")

if sys.argv[1] == "block":
    sys.meta_path.insert(0, NoTensorFlow())
del sys.argv[1]
sys.argv = ["search", *sys.argv[1:]]
try:
    runpy.run_module("search", run_name="__main__", alter_sys=True)
finally:
    print("IMPORTED_TENSORFLOW", "tensorflow" in sys.modules, flush=True)
"""


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


OTHER_BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(not installed(module), reason=f"{module} is not installed"),
    )
    for name, module in (("jax", "jax"), ("torch", "torch"))
]


def run_without_tensorflow(
    *args: str, cwd: Path, block: bool = True, **env: str
) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("KERAS_BACKEND", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW, "block" if block else "see", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_training_runs_under_the_backend_without_tensorflow(name: str, tmp_path: Path) -> None:
    done = run_without_tensorflow("train", "--backend", name, *TINY_TRAIN, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMPORTED_TENSORFLOW False" in done.stdout, done.stdout
    device = [line for line in done.stdout.splitlines() if line.startswith("device")]
    assert device and device[0].endswith(f"{name} backend"), done.stdout
    mse = [line for line in done.stdout.splitlines() if line.startswith("validation MSE")]
    assert mse and 0 < float(mse[0].split()[-1]) < 0.3, done.stdout  # it learned something


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_a_study_keeps_its_backend(name: str, tmp_path: Path) -> None:
    """Two trials under the backend (chosen by KERAS_BACKEND, as a user may), with TensorFlow
    installed but never loaded (Keras would seed it if it could); the backend is stored; a
    resume under TensorFlow is refused before anything trains, the study untouched."""
    study_args = ("run", "--study", "b", "--trials", "2", *TINY_RUN)
    done = run_without_tensorflow(*study_args, cwd=tmp_path, block=False, KERAS_BACKEND=name)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMPORTED_TENSORFLOW False" in done.stdout
    storage = f"sqlite:///{tmp_path}/studies/b.db"
    study = optuna.load_study(study_name="b", storage=storage)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2
    from search import records

    assert records.read_budget(records.study_attrs(study))["backend"] == name
    # Each run stores its provenance under a key of its own (format 3): read_runs finds them.
    run = records.read_runs(records.study_attrs(study))[-1]
    assert run["backend"] == name and run["device"].endswith(f"{name} backend")

    refused = run_without_tensorflow(
        "run", "--study", "b", "--trials", "1", *TINY_RUN, "--backend", "tensorflow", cwd=tmp_path
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--backend {name} (now tensorflow)" in lines[0], lines
    # The command it offers resumes under the stored backend, not the one this run asked for.
    resume = lines[0].split("Resume it as stored: ")[1].split("; or start")[0]
    assert f"--backend {name}" in resume, lines
    assert "IMPORTED_TENSORFLOW False" in refused.stdout
    again = optuna.load_study(study_name="b", storage=storage)
    assert len(again.trials) == 2
    assert json.dumps(records.study_attrs(again), sort_keys=True) == json.dumps(
        records.study_attrs(study), sort_keys=True
    )


def test_an_unknown_backend_is_one_error_line(tmp_path: Path) -> None:
    done = run_without_tensorflow("train", *TINY_TRAIN, cwd=tmp_path, KERAS_BACKEND="theano")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: KERAS_BACKEND='theano'"), lines
    assert list(tmp_path.iterdir()) == []


def test_select_refuses_a_backend_other_than_the_loaded_one() -> None:
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    with pytest.raises(backend.UsageError, match="already loaded"):
        backend.select(other)
    assert backend.select(keras.backend.backend()) == keras.backend.backend()


def test_errors_of_each_backend_become_fail_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason a trial gets: out of memory said first, else the backend and error kind."""

    class ResourceExhaustedError(Exception):
        pass

    class XlaRuntimeError(Exception):
        pass

    monkeypatch.setattr(backend, "current", lambda: "tensorflow")
    reason = backend.describe_error(
        ResourceExhaustedError("Graph execution error:\n\nDetected at node x\nOOM when allocating")
    )
    assert reason == "out of memory: OOM when allocating"
    monkeypatch.setattr(backend, "current", lambda: "jax")
    assert backend.describe_error(XlaRuntimeError("RESOURCE_EXHAUSTED: 2 GiB")).startswith(
        "out of memory: RESOURCE_EXHAUSTED"
    )
    assert backend.describe_error(XlaRuntimeError("INTERNAL: cuDNN")) == (
        "JAX XlaRuntimeError: INTERNAL: cuDNN"
    )
    monkeypatch.setattr(backend, "current", lambda: "torch")
    assert backend.is_failure(RuntimeError("CUDA error: an illegal memory access"))
    assert not backend.is_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
