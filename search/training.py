"""Train one VAE configuration and measure it.

`train_vae(params, data, config)` builds the model from params, trains it under the Keras
backend search.backend chose (a tf.data pipeline under TensorFlow, arrays otherwise),
evaluates validation SSIM/MSE after every epoch (on a fixed validation subset, so it is
cheap), and at the end the full validation split (the objectives), a fixed subset of the
training split (for bias/variance) and the test split (held out: reported, never used for
any decision). An `on_epoch` hook may stop training early (the pruner uses it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from search import backend, defaults
from search.backend import configure_device
from search.data import MnistData
from search.metrics import mse_per_image, ssim_per_image

if TYPE_CHECKING:
    from search.model import VAE

log = logging.getLogger(__name__)

# Batches per call into TensorFlow. Each call ends with the host reading the logs (the
# per-batch NaN check), so with 1 a fast GPU idles between the tiny steps of these models.
# On this CPU 16 took 1.14-1.20x less CPU per batch than 1 (bench/results/
# steps_per_execution.md); the batches, their order and the numbers are unchanged.
STEPS_PER_EXECUTION = 16


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = defaults.TRAIN_EPOCHS
    batch_size: int = defaults.TRAIN_BATCH_SIZE
    learning_rate: float = defaults.LEARNING_RATE
    seed: int = defaults.SEED
    validation_subset: int = defaults.VALIDATION_SUBSET  # images scored after every epoch
    train_eval_subset: int = defaults.TRAIN_EVAL_SUBSET  # scored at the end (bias/variance)
    test_eval_subset: int | None = defaults.TEST_EVAL_SUBSET  # None = the whole test split
    mixed_precision: bool = False  # only honoured on GPUs of compute capability >= 7.0
    jit_compile: bool = False
    deterministic: bool = False  # TensorFlow op determinism: exact GPU repeats, slower
    steps_per_execution: int = STEPS_PER_EXECUTION  # batches per call into TensorFlow


@dataclass
class TrainResult:
    params: dict[str, Any]
    curve: list[dict[str, float]]
    # None for a training that `on_epoch` stopped (a pruned trial): nothing reads a stopped
    # model's final scores, and scoring three splits cost a pruned trial up to a fifth of it.
    val_ssim: float | None
    val_mse: float | None
    train_ssim: float | None
    train_mse: float | None
    test_ssim: float | None
    test_mse: float | None
    epochs_run: int
    epochs_planned: int
    wall_time_s: float
    images_per_s: float
    device: str
    n_params: int
    seed: int
    stopped_reason: str | None = None  # set when `on_epoch` stopped training early
    model: VAE | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """The JSON-able measurements (what a study stores per trial), none left unmeasured."""
        skip = {"params", "model", "stopped_reason"}
        return {k: v for k, v in self.__dict__.items() if k not in skip and v is not None}


class TrainingFailed(Exception):
    """Training could not produce a usable model (NaN loss, a backend runtime error)."""

    def __init__(self, reason: str, curve: list[dict[str, float]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.curve = curve or []


EpochHook = Callable[[dict[str, float]], str | None]


def _input_pipeline(images: np.ndarray, labels: np.ndarray, config: TrainConfig) -> dict:
    """fit()'s data: a tf.data pipeline under TensorFlow, numpy arrays under JAX/PyTorch.

    Both reshuffle every epoch from the seed; Keras batches the arrays itself (seeded by
    set_random_seed), so TensorFlow is never imported for JAX or PyTorch.
    """
    if backend.current() != "tensorflow":
        return {"x": images, "y": labels, "batch_size": config.batch_size, "shuffle": True}
    import tensorflow as tf

    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return {"x": dataset, "shuffle": False}


def reconstruct(vae: VAE, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Decoder means at z = z_mean, in batches (no sampling: deterministic)."""
    parts = [
        np.asarray(vae(images[i : i + batch_size], training=False)["reconstruction"], np.float32)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros_like(images)


def score(vae: VAE, images: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean MSE) of the model's reconstructions of `images`."""
    recon = reconstruct(vae, images)
    return float(ssim_per_image(images, recon).mean()), float(mse_per_image(images, recon).mean())


# Why clear_session() + gc.collect() alone left ~15 MB behind per training: tf.custom_gradient,
# when traced in graph mode, registers its gradient function in TensorFlow's process-global
# gradient registry under a fresh "CustomGradient-<uid>" name and never unregisters it. Keras'
# TF optimizer all-reduces the gradients through the default distribution strategy, whose
# all_reduce is such a custom gradient, so every trace of the train step adds one entry, and
# its closure holds the step's symbolic tensors: the whole traced FuncGraph, the weight and
# optimizer-slot buffers it captured, and the previous default graph stay reachable forever
# (tensorflow/tensorflow#27492, #97697). The entry is only read while the step's gradient is
# being traced, so train_vae drops the entries its own fit() registered once fit() is over.
# (Like clear_session(), this assumes one training at a time per process.)
def _gradient_registry() -> dict[str, Any]:
    if backend.current() != "tensorflow":
        return {}
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else {}


def _forget_custom_gradients(registered_before: set[str]) -> None:
    registry = _gradient_registry()
    for name in [n for n in registry if n.startswith("CustomGradient-")]:
        if name not in registered_before:
            del registry[name]


# The last compiled model, for `reuse_traced_step`: (what must match to reuse it, the model).
_WARM: dict[str, Any] = {}


def _compiled_model(params: dict[str, Any], config: TrainConfig, *, reuse: bool) -> VAE:
    """A compiled model of `params`, its weights, seed state and optimizer fresh for the seed.

    Tracing the train step is about a second of every trial on this CPU. Keras keeps the traced
    step on the model object, so a repeat of the same configuration may reuse the object: a new
    model is built from the seed (cheap: no tracing) and its variables, which are the weights,
    the sampling layer's seed state and the loss trackers, are copied into the kept one; the
    optimizer's step count and moments are zeroed as a new optimizer's are. Only under
    TensorFlow, whose traced step lives on the object (JAX's trainer rebuilds its state each fit).
    """
    import keras

    from search.model import build_vae

    key = repr(
        (
            sorted(params.items()),
            config.learning_rate,
            config.jit_compile,
            config.steps_per_execution,
            config.mixed_precision,
            config.deterministic,
        )
    )
    fresh = build_vae(params, seed=config.seed)
    # Not under mixed precision: its loss-scale optimizer keeps a scale that is not zero anew.
    reuse = reuse and not config.mixed_precision and backend.current() == "tensorflow"
    kept = _WARM.get("model") if reuse and _WARM.get("key") == key else None
    _WARM.clear()
    if kept is not None:
        for target, source in zip(kept.variables, fresh.variables, strict=True):
            target.assign(source)
        for variable in kept.optimizer.variables:
            if variable is not kept.optimizer.learning_rate:
                variable.assign(np.zeros(variable.shape, variable.dtype))
        fresh = kept
    else:
        fresh.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            jit_compile=config.jit_compile,
            steps_per_execution=config.steps_per_execution,
        )
        # Adam creates its moment slots on its first update. Left to fit(), that happens
        # inside the first traced train step, and tf.function then traces the whole step a
        # second time (variables may only be created on the first trace): about a second of
        # every trial on this CPU. Built here, the step is traced once; the numbers are the
        # same (the slots start at zero either way).
        fresh.optimizer.build(fresh.trainable_variables)
    if reuse:
        _WARM.update(key=key, model=fresh)
    return fresh


def train_vae(
    params: dict[str, Any],
    data: MnistData,
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochHook | None = None,
    *,
    reuse_traced_step: bool = False,
) -> TrainResult:
    """Train one configuration and score it.

    With `reuse_traced_step`, a training of the configuration the previous one trained (a
    sweep's repeats, the confirmation runs) reuses that model object and its traced train
    step, with every variable set afresh from the seed: the same numbers, one trace fewer.
    The model returned is then only valid until the next training.

    Raises TrainingFailed on a NaN loss, and on any backend runtime error while building,
    training or scoring (out of memory, a cuDNN/cuBLAS failure, an internal error): the
    model's memory is released first, so the caller can go on to the next configuration.
    """
    import keras

    # Imported here, not at the top: the `--workers` parent reads TrainConfig and must not
    # load TensorFlow (keras imports it).
    from search.model import check_params, count_params

    params = check_params(params)
    # A fresh Keras state per training (layer names, graph); the traced steps themselves are
    # only freed once their custom-gradient registrations are dropped (after fit, below).
    keras.backend.clear_session()  # Keras 3's clear_session runs gc.collect() itself
    device = configure_device(config.mixed_precision, config.deterministic)
    # A trial's seed is --seed plus its number; numpy takes 0..2^32-1, so it wraps around.
    backend.set_random_seed(config.seed % 2**32)

    train = data.train
    val_images = data.validation.images
    val_fixed = val_images[: config.validation_subset]
    fit_data = _input_pipeline(train.images, train.labels, config)

    curve: list[dict[str, float]] = []
    stopped: list[str] = []
    train_seconds = [0.0]

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            train_seconds[0] += time.perf_counter() - self.started
            logs = logs or {}
            losses = {k: float(v) for k, v in logs.items()}
            if not all(math.isfinite(v) for v in losses.values()):
                stopped.append(f"loss became NaN or infinite at epoch {epoch + 1}")
                self.model.stop_training = True
                return
            val_ssim, val_mse = score(self.model, val_fixed)
            record = {"epoch": epoch + 1, "val_ssim": val_ssim, "val_mse": val_mse, **losses}
            record["seconds"] = time.perf_counter() - self.started
            curve.append(record)
            log.debug("epoch %d: %s", epoch + 1, record)
            reason = on_epoch(record) if on_epoch else None
            if reason:
                stopped.append(reason)
                self.model.stop_training = True

    class StopOnNaNBatch(keras.callbacks.Callback):
        """Stop within the epoch when the loss blows up, not after wasting the rest of it.

        Not `keras.callbacks.TerminateOnNaN`, which does the same check but prints a line of its
        own to stdout; a run prints only our lines, and the reason goes into the trial's record.
        """

        def on_train_batch_end(self, batch, logs=None):
            if logs and not math.isfinite(float(logs.get("loss", 0.0))):
                self.model.stop_training = True

    started = time.perf_counter()
    registered_before = set(_gradient_registry())
    failure: str | None = None
    vae: VAE | None = None
    try:
        vae = _compiled_model(params, config, reuse=reuse_traced_step)
        callbacks = [EpochRecorder(), StopOnNaNBatch()]
        vae.fit(**fit_data, epochs=config.epochs, verbose=0, callbacks=callbacks)
        if not stopped and len(curve) < config.epochs:
            # fit ended early without our say: the batch-level NaN guard fired
            stopped.append(f"loss became NaN or infinite in epoch {len(curve) + 1}")
        val_ssim = val_mse = train_ssim = train_mse = test_ssim = test_mse = None
        if not stopped:
            val_ssim, val_mse = score(vae, val_images)
            train_ssim, train_mse = score(vae, train.images[: config.train_eval_subset])
            test_ssim, test_mse = score(vae, data.test.images[: config.test_eval_subset])
        n_params = count_params(vae)
    except backend.runtime_errors() as exc:
        if not backend.is_failure(exc):
            raise
        failure = backend.describe_error(exc)
        log.debug("training failed", exc_info=True)
    finally:
        # Without this every training pins its traced step in memory (see above).
        _forget_custom_gradients(registered_before)

    if failure is not None or (stopped and stopped[0].startswith("loss became")):
        _WARM.clear()  # a model that failed is never reused
    if failure is not None:
        # Outside the except block, so no traceback keeps the model's frames (and with them
        # its GPU buffers) alive; the next trial then finds the memory free.
        vae = None
        release_memory()
        raise TrainingFailed(failure, curve)
    if stopped and stopped[0].startswith("loss became"):
        raise TrainingFailed(stopped[0], curve)

    wall = time.perf_counter() - started
    epochs_run = len(curve)
    return TrainResult(
        params=params,
        curve=curve,
        val_ssim=val_ssim,
        val_mse=val_mse,
        train_ssim=train_ssim,
        train_mse=train_mse,
        test_ssim=test_ssim,
        test_mse=test_mse,
        epochs_run=epochs_run,
        epochs_planned=config.epochs,
        wall_time_s=wall,
        images_per_s=len(train) * epochs_run / max(train_seconds[0], 1e-9),
        device=device,
        n_params=n_params,
        seed=config.seed,
        stopped_reason=stopped[0] if stopped else None,
        model=vae,
    )


def describe_tf_error(exc: Exception) -> str:
    """The fail reason of a trial that a backend's runtime error ended: kind + first line."""
    return backend.describe_error(exc)


def release_memory() -> None:
    """Drop Keras' global state and collect, so a failed model's buffers are freed now."""
    import keras

    keras.backend.clear_session()
    gc.collect()


@contextlib.contextmanager
def tf_errors_fail_trial(what: str, record: Callable[[str], None]) -> Iterator[None]:
    """Turn a backend runtime error in the block into TrainingFailed, memory released.

    For work on a trained model outside `train_vae` (writing its outputs): `record` gets the
    reason (the study stores it on the trial) before TrainingFailed is raised.
    """
    failure: str | None = None
    try:
        yield
    except backend.runtime_errors() as exc:
        if not backend.is_failure(exc):
            raise
        failure = f"{backend.describe_error(exc)} (while {what})"
        log.debug("%s failed", what, exc_info=True)
    if failure is not None:
        release_memory()
        record(failure)
        raise TrainingFailed(failure)
