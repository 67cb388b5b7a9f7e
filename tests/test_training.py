"""Real training on the bundled subset with tiny models."""

from __future__ import annotations

import gc
import resource

import numpy as np
import pytest

from search.training import TrainConfig, TrainingFailed, _gradient_registry, train_vae

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
    for key in ("val_ssim", "train_ssim", "test_ssim"):
        assert -1.0 <= getattr(result, key) <= 1.0
    for key in ("val_mse", "train_mse", "test_mse"):
        assert 0.0 < getattr(result, key) < 0.25
    assert result.n_params > 0 and result.images_per_s > 0 and result.wall_time_s > 0
    assert result.device.startswith(("CPU", "GPU"))
    assert {"reconstruction_loss", "kl_loss", "val_ssim", "val_mse"} <= set(result.curve[0])


def test_same_seed_same_metrics(mnist):
    # Stated tolerance: 1e-5 on the CPU (multi-threaded reductions may reorder float sums).
    first = train_vae(TINY, mnist, CONFIG)
    second = train_vae(TINY, mnist, CONFIG)
    assert first.val_mse == pytest.approx(second.val_mse, abs=1e-5)
    assert first.val_ssim == pytest.approx(second.val_ssim, abs=1e-5)
    other = train_vae(TINY, mnist, TrainConfig(**{**CONFIG.__dict__, "seed": 7}))
    assert other.val_mse != pytest.approx(first.val_mse, abs=1e-7)


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


def test_nan_loss_fails_with_the_reason(mnist):
    with pytest.raises(TrainingFailed, match="NaN"):
        train_vae(TINY, mnist, TrainConfig(**{**CONFIG.__dict__, "learning_rate": 1e12}))


def test_twenty_trainings_do_not_keep_growing_memory(mnist):
    """Loose bound: after a warm-up, 20 more trainings add < 300 MB of peak RSS."""
    config = TrainConfig(
        epochs=1, batch_size=128, validation_subset=50, train_eval_subset=50, test_eval_subset=50
    )
    small = type(mnist)(
        type(mnist.train)(mnist.train.images[:256], mnist.train.labels[:256]),
        mnist.validation,
        mnist.test,
        mnist.provenance,
    )
    for _ in range(3):
        train_vae(TINY, small, config)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    registered = len(_gradient_registry())
    for i in range(20):
        train_vae({**TINY, "latent_dim": 2 + i % 3}, small, config)
    gc.collect()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    # The cause of the growth: each traced train step left a tf.custom_gradient registration,
    # and with it the step's whole graph and captured weights, in TensorFlow's registry.
    left = len(_gradient_registry()) - registered
    assert left == 0, f"{left} gradient registrations left behind by 20 trainings"
    assert grown < 300, f"peak RSS grew {grown:.0f} MB over 20 trainings"
    assert np.isfinite(grown)
