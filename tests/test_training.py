"""Real training on the bundled subset with tiny models."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from search.metrics import mse_per_image, ssim_per_image
from search.training import (
    TrainConfig,
    TrainingFailed,
    _gradient_registry,
    reconstruct,
    train_vae,
)

TINY = {"latent_dim": 4, "n_layers": 1, "filters": 8, "dense_units": 16, "loss": "bce"}
CONFIG = TrainConfig(
    epochs=2,
    batch_size=64,
    validation_subset=100,
    train_eval_subset=200,
    test_eval_subset=200,
    seed=0,
)


def test_training_reduces_loss_and_reports_everything(mnist):
    result = train_vae(
        {**TINY, "latent_dim": 8},
        mnist,
        TrainConfig(
            epochs=4,
            batch_size=32,
            validation_subset=200,
            train_eval_subset=200,
            test_eval_subset=200,
        ),
    )
    losses = [row["loss"] for row in result.curve]
    assert len(result.curve) == 4 and losses[-1] < losses[0]
    assert result.curve[-1]["val_mse"] < result.curve[0]["val_mse"]
    # The reported scores are the model's scores on each split, recomputed here; SSIM rose
    # with training, and MSE beats the laziest model (the mean training digit for every input).
    assert result.val_ssim > result.curve[0]["val_ssim"]
    mean_digit = mnist.train.images.mean(axis=0, keepdims=True)
    for split, images in (
        ("val", mnist.validation.images),
        ("train", mnist.train.images[:200]),
        ("test", mnist.test.images[:200]),
    ):
        recon = reconstruct(result.model, images)
        ssim, mse = getattr(result, f"{split}_ssim"), getattr(result, f"{split}_mse")
        assert ssim == pytest.approx(ssim_per_image(images, recon).mean(), abs=1e-6), split
        assert mse == pytest.approx(mse_per_image(images, recon).mean(), rel=1e-6), split
        lazy = np.broadcast_to(mean_digit, images.shape)
        assert mse < mse_per_image(images, lazy).mean(), split
    assert result.n_params > 0 and result.images_per_s > 0 and result.wall_time_s > 0
    assert result.device.startswith(("CPU", "GPU"))
    assert {"reconstruction_loss", "kl_loss", "val_ssim", "val_mse"} <= set(result.curve[0])


@pytest.mark.slow
def test_same_seed_same_metrics(mnist):
    # Stated tolerance: 1e-5 on the CPU (multi-threaded reductions may reorder float sums).
    first = train_vae(TINY, mnist, CONFIG)
    second = train_vae(TINY, mnist, CONFIG)
    assert first.val_mse == pytest.approx(second.val_mse, abs=1e-5)
    assert first.val_ssim == pytest.approx(second.val_ssim, abs=1e-5)
    other = train_vae(TINY, mnist, TrainConfig(**{**CONFIG.__dict__, "seed": 7}))
    assert other.val_mse != pytest.approx(first.val_mse, abs=1e-7)


@pytest.fixture
def traced(monkeypatch) -> list[int]:
    """One entry per trace of the train step: compute_loss runs in Python only while the
    train step is being traced."""
    from search import model

    traces: list[int] = []
    original = model.VAE.compute_loss

    def counting(self, *args, **kwargs):
        traces.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(model.VAE, "compute_loss", counting)
    return traces


def test_the_train_step_is_traced_once_per_training(mnist, traced):
    # Adam creating its slots inside the first step made tf.function trace the step twice
    # (about a second of every trial); train_vae builds the optimizer first.
    result = train_vae(TINY, mnist, CONFIG)
    assert len(result.curve) == CONFIG.epochs
    assert len(traced) == 1


@pytest.mark.slow
def test_a_repeat_reuses_the_traced_step_and_gives_the_same_numbers(mnist, traced):
    fresh = train_vae(TINY, mnist, CONFIG, reuse_traced_step=True)
    fresh_curve, fresh_values = fresh.curve, (fresh.val_ssim, fresh.val_mse, fresh.test_mse)
    assert len(traced) == 1
    again = train_vae(TINY, mnist, CONFIG, reuse_traced_step=True)
    assert len(traced) == 1  # no new trace
    assert again.model is fresh.model
    # Weights, the sampling seed state, the optimizer and the trackers all start afresh.
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in fresh_curve]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in again.curve] == strip
    assert (again.val_ssim, again.val_mse, again.test_mse) == fresh_values
    # Another seed or configuration builds (and traces) a model of its own.
    other = train_vae(
        TINY, mnist, TrainConfig(**{**CONFIG.__dict__, "seed": 7}), reuse_traced_step=True
    )
    assert len(traced) == 1 and other.model is fresh.model  # the seed is set afresh, not traced
    assert other.val_mse != pytest.approx(fresh.val_mse, abs=1e-7)
    train_vae({**TINY, "latent_dim": 3}, mnist, CONFIG, reuse_traced_step=True)
    assert len(traced) == 2


def test_predictor_trains_jointly(mnist):
    result = train_vae(
        {**TINY, "predictor": True},
        mnist,
        TrainConfig(**{**CONFIG.__dict__, "epochs": 3, "batch_size": 32}),
    )
    assert "predictor_accuracy" in result.curve[-1]
    # the classifier on z_mean learns: its loss falls from the first epoch to the last
    assert result.curve[-1]["predictor_loss"] < result.curve[0]["predictor_loss"]


def test_on_epoch_hook_stops_training(mnist):
    result = train_vae(
        TINY,
        mnist,
        TrainConfig(**{**CONFIG.__dict__, "epochs": 3}),
        on_epoch=lambda record: "stop here" if record["epoch"] == 1 else None,
    )
    assert result.epochs_run == 1 and result.stopped_reason == "stop here"
    # A stopped (pruned) training is not scored at the end: its final scores are not stored.
    assert result.val_ssim is None and result.test_mse is None
    assert "val_ssim" not in result.summary() and result.summary()["epochs_run"] == 1


def test_nan_loss_fails_with_the_reason(mnist):
    with pytest.raises(TrainingFailed, match="NaN"):
        train_vae(TINY, mnist, TrainConfig(**{**CONFIG.__dict__, "learning_rate": 1e12}))


def _resident_mb() -> float:
    """Memory this process holds now (ru_maxrss is the lifetime peak, which never falls)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_repeated_trainings_do_not_keep_growing_memory(mnist):
    """After a warm-up, eight more trainings leave no gradient registration behind and hold
    less than 80 MB more (the leak this guards against was ~15 MB per training)."""
    config = TrainConfig(
        epochs=1, batch_size=128, validation_subset=50, train_eval_subset=50, test_eval_subset=50
    )
    small = type(mnist)(
        type(mnist.train)(mnist.train.images[:256], mnist.train.labels[:256]),
        mnist.validation,
        mnist.test,
        mnist.provenance,
    )
    for _ in range(2):
        train_vae(TINY, small, config)
    gc.collect()
    before = _resident_mb()
    registered = len(_gradient_registry())
    for i in range(8):
        train_vae({**TINY, "latent_dim": 2 + i % 3}, small, config)
    gc.collect()
    grown = _resident_mb() - before
    # The cause of the growth: each traced train step left a tf.custom_gradient registration,
    # and with it the step's whole graph and captured weights, in TensorFlow's registry.
    left = len(_gradient_registry()) - registered
    assert left == 0, f"{left} gradient registrations left behind by 8 trainings"
    assert grown < 80, f"resident memory grew {grown:.0f} MB over 8 trainings"
