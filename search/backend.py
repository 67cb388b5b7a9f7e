"""What differs between Keras 3's backends (TensorFlow, JAX, PyTorch), in one place.

Which backend trains (`KERAS_BACKEND`, or `--backend`, chosen before Keras is imported), the
device it trains on and how that device is set up (memory growth, mixed precision, op
determinism), and which of its errors mean "this training failed" (out of memory, a driver or
runtime error) rather than a bug. Nothing here imports a backend before it is asked for: under
JAX or PyTorch, TensorFlow is never imported (a GPU box may not have it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from search.defaults import ASSIGNED_DEVICE_ENV, BACKEND, BACKENDS
from search.errors import UsageError

log = logging.getLogger(__name__)

KERAS_BACKEND_ENV = "KERAS_BACKEND"

# Tensor cores (float16 matmul/conv at full speed) arrived with Volta, compute capability 7.0;
# below it mixed_float16 is no faster and only loses precision.
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)


def select(name: str | None) -> str:
    """Make `name` (or $KERAS_BACKEND, else the default) the backend; before Keras loads.

    Also sets what must be set before the backend itself starts: JAX takes GPU memory as it
    needs it (not 75% of the card at start, which would starve a second worker on the GPU).
    """
    chosen = name or os.environ.get(KERAS_BACKEND_ENV) or BACKEND
    if chosen not in BACKENDS:
        raise UsageError(
            f"{KERAS_BACKEND_ENV}={chosen!r} is not a backend vae-search trains with "
            f"(choose from {', '.join(BACKENDS)})"
        )
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != chosen:
        raise UsageError(f"Keras already loaded with backend {keras.backend.backend()!r}")
    os.environ[KERAS_BACKEND_ENV] = chosen
    if chosen == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return chosen


def current() -> str:
    """The backend Keras uses (or will use once it loads)."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.backend.backend())
    return os.environ.get(KERAS_BACKEND_ENV) or BACKEND


@dataclass
class Device:
    description: str  # what the run log, the study and every trial record
    mixed_precision_blocker: str | None  # why mixed precision cannot help here, if it cannot


_device: Device | None = None
_mixed_precision_refusal_logged = False


def set_memory_growth(devices: list[Any]) -> None:
    """Let TensorFlow take GPU memory as it needs it instead of the whole card at start.

    Without it one worker holds the card and a second worker or the dashboard on the same GPU
    fails out of memory; so a refusal (TensorFlow already initialised, or not a GPU) is logged.
    """
    import tensorflow as tf

    for device in devices:
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except (RuntimeError, ValueError) as exc:
            log.warning(
                "memory growth not set on %s (%s): TensorFlow may reserve the whole GPU",
                device.name,
                exc,
            )


def _gpu_label() -> str:
    """The GPU the backend's first GPU is, in the words of whoever chose it."""
    assigned = os.environ.get(ASSIGNED_DEVICE_ENV)
    if assigned:  # the `--workers` launcher chose it and named it (index or UUID, model)
        return assigned
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    first = visible.split(",")[0].strip() if visible else "0"
    return f"GPU {first}"


def describe_gpu(name: str, capability: tuple[int, int] | None, n_visible: int) -> Device:
    """The trained-on GPU from its model name and compute capability."""
    label = _gpu_label()
    # the launcher's label already holds the model name
    description = label if os.environ.get(ASSIGNED_DEVICE_ENV) else f"{label} ({name})"
    if capability:
        description += f", compute capability {capability[0]}.{capability[1]}"
    if n_visible > 1:
        description += f"; first of {n_visible} visible GPUs, the others unused"
    blocker = None
    if capability is None or tuple(capability) < MIXED_PRECISION_MIN_CAPABILITY:
        shown = f"{capability[0]}.{capability[1]}" if capability else "unknown"
        blocker = f"{name} has compute capability {shown}, below 7.0"
    return Device(description, blocker)


def _tensorflow_gpus() -> tuple[list[tuple[str, tuple[int, int] | None]], str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    set_memory_growth(gpus)
    found = []
    for gpu in gpus[:1]:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        found.append((details.get("device_name", "unknown model"), capability))
    found += [("", None)] * (len(gpus) - len(found))
    # The `--workers` launcher splits the cores through this variable; TensorFlow
    # honours it but get_intra_op_parallelism_threads() still reports 0 ("all").
    threads = (
        tf.config.threading.get_intra_op_parallelism_threads()
        or os.environ.get("TF_NUM_INTRAOP_THREADS")
        or f"all {os.cpu_count()}"
    )
    return found, str(threads)


def _jax_gpus() -> tuple[list[tuple[str, tuple[int, int] | None]], str]:
    import jax

    found = []
    for device in jax.devices():
        if device.platform != "gpu":
            continue
        raw = getattr(device, "compute_capability", None)  # "9.0" on CUDA
        capability = tuple(int(p) for p in str(raw).split(".")[:2]) if raw else None
        found.append((str(device.device_kind), capability))
    return found, f"all {os.cpu_count()}"  # type: ignore[return-value]


def _torch_gpus() -> tuple[list[tuple[str, tuple[int, int] | None]], str]:
    import torch

    found: list[tuple[str, tuple[int, int] | None]] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            found.append((torch.cuda.get_device_name(index), (major, minor)))
    return found, str(torch.get_num_threads())


def list_gpus() -> tuple[list[tuple[str, tuple[int, int] | None]], str]:
    """(model name, compute capability) of each GPU the backend sees, and its CPU threads."""
    return {"tensorflow": _tensorflow_gpus, "jax": _jax_gpus, "torch": _torch_gpus}[current()]()


def _detect_device() -> Device:
    gpus, threads = list_gpus()
    name = current()
    if gpus:
        return describe_gpu(gpus[0][0], gpus[0][1], len(gpus))
    assigned = os.environ.get(ASSIGNED_DEVICE_ENV)
    description = f"CPU ({threads} threads)"
    shown = "TensorFlow" if name == "tensorflow" else {"jax": "JAX", "torch": "PyTorch"}[name]
    if assigned:
        log.warning(
            "given %s, but %s sees no GPU: is its CUDA build installed (for TensorFlow: "
            "pip install -e '.[gpu]') and the NVIDIA driver recent enough?",
            assigned,
            shown,
        )
        description += f"; {assigned} was assigned but {shown} sees no GPU"
    return Device(description, "no GPU (float16 on a CPU is slower, not faster)")


def _enable_determinism() -> None:
    name = current()
    if name == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif name == "torch":
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:  # XLA reads its flags when JAX starts its GPU client: say so where it is too late
        flags = os.environ.get("XLA_FLAGS", "")
        if "--xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


def configure_device(mixed_precision: bool = False, deterministic: bool = False) -> str:
    """Set up the backend's device once per process and say which device trains.

    Every backend places work on the first visible GPU by itself; TensorFlow's memory growth
    (JAX's no-preallocation, see `select`) stops it from grabbing the whole card, so a GPU can
    be shared with the dashboard or another worker. Mixed precision is switched on only where
    it helps (a GPU of compute capability >= 7.0); elsewhere one log line says it was not.
    `deterministic` turns on the backend's op determinism: same seed, same numbers on a GPU.
    """
    global _device, _mixed_precision_refusal_logged
    import keras

    if deterministic and current() == "jax":
        _enable_determinism()  # before JAX looks at the devices
    if _device is None:
        _device = _detect_device()
    use_mixed = mixed_precision and _device.mixed_precision_blocker is None
    if mixed_precision and not use_mixed and not _mixed_precision_refusal_logged:
        log.info("mixed precision not enabled: %s", _device.mixed_precision_blocker)
        _mixed_precision_refusal_logged = True
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    if deterministic:
        _enable_determinism()
    description = _device.description
    if current() != BACKEND:
        description += f", {current()} backend"
    if use_mixed:
        description += ", mixed precision"
    if deterministic:
        description += ", deterministic ops"
    return description


def set_random_seed(seed: int) -> None:
    """keras.utils.set_random_seed, without importing TensorFlow under JAX or PyTorch.

    Keras seeds TensorFlow too whenever it can be imported (for tf.data pipelines), which
    would load all of TensorFlow into a JAX or PyTorch worker; only our data never goes
    through tf.data there, so for that one call Keras is told TensorFlow is not available.
    """
    import keras
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if current() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    before = lazy._available
    lazy._available = False
    try:
        keras.utils.set_random_seed(seed)
    finally:
        lazy._available = before


@contextlib.contextmanager
def exact_matmul(dtype: str) -> Iterator[str]:
    """The dtype a metric can really compute in, with matmuls at full precision.

    JAX has no float64 unless x64 is enabled (it would truncate to float32 with a warning),
    and on Ampere and newer GPUs it multiplies float32 in TensorFloat-32 by default; so under
    JAX float64 becomes float32 at "highest" matmul precision (about 1e-7 off, not 1e-3).
    """
    if current() != "jax" or dtype != "float64":
        yield dtype
        return
    import jax

    if jax.config.read("jax_enable_x64"):
        yield dtype
        return
    with jax.default_matmul_precision("highest"):
        yield "float32"


def runtime_errors() -> tuple[type[BaseException], ...]:
    """The backend's errors that fail a training (out of memory, driver, runtime errors)."""
    name = current()
    if name == "tensorflow":
        import tensorflow as tf

        return (tf.errors.OpError,)
    if name == "jax":
        import jax

        return (jax.errors.JaxRuntimeError,)
    import torch

    # PyTorch raises most CUDA/cuDNN/cuBLAS failures as a plain RuntimeError: `is_failure`
    # keeps only those, so a bug in our code still shows as one.
    return (torch.OutOfMemoryError, RuntimeError)


def is_failure(exc: BaseException) -> bool:
    """Whether a caught `runtime_errors()` error is the device's failure, not a bug."""
    if current() != "torch" or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return any(word in text for word in ("CUDA", "cuDNN", "CUBLAS", "cublas", "out of memory"))


def describe_error(exc: BaseException) -> str:
    """The fail reason of a training a backend's runtime error ended: kind + first line."""
    # A TensorFlow graph execution error opens with a header and the Python stack of the
    # failing node; the kernel's own message (what a user can act on) comes after them.
    lines = [line.strip() for line in str(getattr(exc, "message", "") or exc).splitlines()]
    meaningful = [
        line
        for line in lines
        if line
        and line != "Graph execution error:"
        and not line.startswith(("Detected at node", "File ", "[["))
    ]
    first_line = (meaningful or lines or [""])[0][:200]
    kind = type(exc).__name__
    if kind in ("ResourceExhaustedError", "OutOfMemoryError") or "RESOURCE_EXHAUSTED" in str(exc):
        return f"out of memory: {first_line}"
    shown = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}[current()]
    return f"{shown} {kind}: {first_line}"
