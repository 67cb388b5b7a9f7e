"""Train one VAE configuration and measure it.

`train_vae(params, data, config)` builds the model from params, trains it with a tf.data
pipeline, evaluates validation SSIM/MSE after every epoch (on a fixed validation subset, so
it is cheap), and at the end the full validation split (the objectives), a fixed subset of
the training split (for bias/variance) and the test split (held out: reported, never used
for any decision). An `on_epoch` hook may stop training early (the pruner uses it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.data import MnistData
from search.metrics import mse_per_image, ssim_per_image
from search.model import VAE, build_vae, check_params, count_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    validation_subset: int = 1000  # images scored after every epoch
    train_eval_subset: int = 2000  # training images scored at the end (bias/variance)
    test_eval_subset: int | None = None  # None = the whole test split
    mixed_precision: bool = False
    jit_compile: bool = False


@dataclass
class TrainResult:
    params: dict[str, Any]
    curve: list[dict[str, float]]
    val_ssim: float
    val_mse: float
    train_ssim: float
    train_mse: float
    test_ssim: float
    test_mse: float
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
        """The JSON-able measurements (what a study stores per trial)."""
        skip = {"params", "model", "stopped_reason"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}


class TrainingFailed(Exception):
    """Training could not produce a usable model (NaN loss, out of memory)."""

    def __init__(self, reason: str, curve: list[dict[str, float]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.curve = curve or []


EpochHook = Callable[[dict[str, float]], str | None]

_device: str | None = None


def configure_device(mixed_precision: bool = False) -> str:
    """Turn on GPU memory growth (once per process) and say which device trains.

    TensorFlow places ops on the first visible GPU by itself; memory growth stops it from
    grabbing the whole card, so a GPU can be shared with the dashboard or another worker.
    """
    global _device
    import keras
    import tensorflow as tf

    if _device is None:
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            # RuntimeError: already initialised, growth can no longer change
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", "GPU")
            _device = f"GPU:0 ({name})" + (f" of {len(gpus)} GPUs" if len(gpus) > 1 else "")
        else:
            # The `--workers` launcher splits the cores through this variable; TensorFlow
            # honours it but get_intra_op_parallelism_threads() still reports 0 ("all").
            threads = (
                tf.config.threading.get_intra_op_parallelism_threads()
                or os.environ.get("TF_NUM_INTRAOP_THREADS")
                or f"all {os.cpu_count()}"
            )
            _device = f"CPU ({threads} threads)"
    policy = "mixed_float16" if mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return _device + (", mixed precision" if mixed_precision else "")


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
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else {}


def _forget_custom_gradients(registered_before: set[str]) -> None:
    registry = _gradient_registry()
    for name in [n for n in registry if n.startswith("CustomGradient-")]:
        if name not in registered_before:
            del registry[name]


def train_vae(
    params: dict[str, Any],
    data: MnistData,
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train one configuration; raise TrainingFailed on NaN loss or out-of-memory."""
    import keras
    import tensorflow as tf

    params = check_params(params)
    # A fresh Keras state per training (layer names, graph); the traced steps themselves are
    # only freed once their custom-gradient registrations are dropped (after fit, below).
    keras.backend.clear_session()  # Keras 3's clear_session runs gc.collect() itself
    device = configure_device(config.mixed_precision)
    # A trial's seed is --seed plus its number; numpy takes 0..2^32-1, so it wraps around.
    keras.utils.set_random_seed(config.seed % 2**32)

    train = data.train
    val_images = data.validation.images
    val_fixed = val_images[: config.validation_subset]
    dataset = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

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
        """Stop within the epoch when the loss blows up, not after wasting the rest of it."""

        def on_train_batch_end(self, batch, logs=None):
            if logs and not math.isfinite(float(logs.get("loss", 0.0))):
                self.model.stop_training = True

    started = time.perf_counter()
    registered_before = set(_gradient_registry())
    try:
        vae = build_vae(params, seed=config.seed)
        vae.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate), jit_compile=config.jit_compile
        )
        callbacks = [EpochRecorder(), StopOnNaNBatch()]
        vae.fit(dataset, epochs=config.epochs, verbose=0, shuffle=False, callbacks=callbacks)
    except tf.errors.ResourceExhaustedError as exc:
        keras.backend.clear_session()
        gc.collect()
        raise TrainingFailed(f"out of memory: {str(exc).splitlines()[0][:200]}", curve) from exc
    finally:
        # Without this every training pins its traced step in memory (see above).
        _forget_custom_gradients(registered_before)

    if stopped and stopped[0].startswith("loss became"):
        raise TrainingFailed(stopped[0], curve)
    if len(curve) < config.epochs and not stopped:
        # fit ended early without our say: the batch-level NaN guard fired
        raise TrainingFailed(f"loss became NaN or infinite in epoch {len(curve) + 1}", curve)

    val_ssim, val_mse = score(vae, val_images)
    train_ssim, train_mse = score(vae, train.images[: config.train_eval_subset])
    test_images = data.test.images[: config.test_eval_subset]
    test_ssim, test_mse = score(vae, test_images)
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
        n_params=count_params(vae),
        seed=config.seed,
        stopped_reason=stopped[0] if stopped else None,
        model=vae,
    )
