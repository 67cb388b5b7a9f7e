"""GPU code paths proven on the CPU: TensorFlow runtime errors end a trial (not the worker),
mixed precision computes sampling and losses in float32, the device is set up honestly.

The GPU faults are TensorFlow's own error types (what cuDNN, cuBLAS and the allocator raise
under memory pressure, tensorflow#36025, #24828), raised from inside a real Keras fit, from
the scoring step and from the artifact step of a real study.
"""

from __future__ import annotations

import gc
import logging
import math

import keras
import numpy as np
import optuna
import pytest
import tensorflow as tf
from optuna.trial import TrialState

import search.backend as backend
import search.outputs
import search.training as training
from search.data import MnistData, Split
from search.model import VAE, Sampling, build_vae
from search.training import TrainConfig, TrainingFailed, configure_device, train_vae

TINY = {"latent_dim": 4, "n_layers": 1, "filters": 8, "dense_units": 16, "loss": "bce"}
CONFIG = TrainConfig(
    epochs=2, batch_size=64, validation_subset=50, train_eval_subset=50, test_eval_subset=50
)
CUDNN = "Failed to get convolution algorithm. This is probably because cuDNN failed to initialize"

GPU_FAULTS = [
    (tf.errors.ResourceExhaustedError, "OOM when allocating tensor with shape[64,8,14,14]"),
    (tf.errors.UnknownError, CUDNN),
    (tf.errors.InternalError, "Blas xGEMM launch failed : a.shape=[1,64,1568]"),
]


def _small(mnist: MnistData, n: int = 256) -> MnistData:
    return MnistData(
        Split(mnist.train.images[:n], mnist.train.labels[:n]),
        mnist.validation,
        mnist.test,
        mnist.provenance,
    )


def _live_models() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, VAE))


@pytest.mark.parametrize(("error", "message"), GPU_FAULTS)
@pytest.mark.slow
def test_a_tensorflow_error_inside_fit_fails_the_training_and_frees_the_model(
    mnist, error, message
) -> None:
    def fault_at_epoch_2(record: dict[str, float]) -> None:
        # on_epoch runs inside fit (an epoch-end callback), like a failed kernel would
        if record["epoch"] == 2:
            raise error(None, None, message)
        return None

    before = _live_models()
    with pytest.raises(TrainingFailed) as failed:
        train_vae(TINY, _small(mnist), CONFIG, on_epoch=fault_at_epoch_2)
    reason = failed.value.reason
    if error is tf.errors.ResourceExhaustedError:
        assert reason == f"out of memory: {message}"
    else:
        assert reason == f"TensorFlow {error.__name__}: {message}"
    assert len(failed.value.curve) == 2  # the epochs measured before the fault are kept
    assert failed.value.__cause__ is None and failed.value.__context__ is None
    del failed
    # memory released: no model of the failed training is reachable any more
    assert _live_models() == before


def test_a_runtime_error_raised_by_a_kernel_inside_the_train_step(mnist) -> None:
    """A real TensorFlow kernel failing in the compiled step: a label outside 0..9."""
    data = _small(mnist)
    bad = MnistData(
        Split(data.train.images, np.full_like(data.train.labels, 12)),
        data.validation,
        data.test,
        data.provenance,
    )
    with pytest.raises(
        TrainingFailed, match="TensorFlow InvalidArgumentError: Received a label value of 12 "
    ):
        train_vae({**TINY, "predictor": True}, bad, CONFIG)


@pytest.mark.parametrize(("error", "message"), GPU_FAULTS)
@pytest.mark.slow
def test_a_tensorflow_error_in_the_final_scoring_fails_the_training(
    mnist, monkeypatch: pytest.MonkeyPatch, error, message
) -> None:
    real_score = training.score
    calls = []

    def score_failing_after_fit(vae, images):
        calls.append(len(images))
        if len(calls) > CONFIG.epochs:  # the first calls are the per-epoch scores in fit
            raise error(None, None, message)
        return real_score(vae, images)

    monkeypatch.setattr(training, "score", score_failing_after_fit)
    with pytest.raises(TrainingFailed, match=message.split("[")[0].rstrip()):
        train_vae(TINY, _small(mnist), CONFIG)
    assert len(calls) == CONFIG.epochs + 1


@pytest.mark.slow
def test_the_study_fails_the_trial_and_goes_on(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial 0: cuDNN error while scoring; trial 1: OOM writing artifacts; trial 2 trains."""
    from search.run import RunOptions, run_study
    from search.storage import open_storage

    real_score = training.score
    real_write = search.outputs.write_trial_outputs
    faults = {"score": 0, "write": 0}

    def score_once_failing(vae, images):
        faults["score"] += 1
        if faults["score"] == 1:
            raise tf.errors.UnknownError(None, None, CUDNN)
        return real_score(vae, images)

    def write_once_failing(*args, **kwargs):
        faults["write"] += 1
        if faults["write"] == 1:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(training, "score", score_once_failing)
    monkeypatch.setattr(search.outputs, "write_trial_outputs", write_once_failing)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/faults.db"
    options = RunOptions(
        trials=1,
        study="faults",
        storage=url,
        data="bundled",
        preset="smoke",
        subset=64,
        epochs=1,
        pruning=False,
        report=False,
        keep_models="none",
        confirm=0,  # exactly the three trials below
        argv=["run"],
    )
    assert run_study(options) == 0
    trials = optuna.load_study(study_name="faults", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == f"TensorFlow UnknownError: {CUDNN}"
    assert trials[1].user_attrs["fail_reason"] == (
        "out of memory: OOM when allocating tensor (while writing the trial's outputs)"
    )
    assert all(math.isfinite(v) for v in trials[2].values)


# -- mixed precision --------------------------------------------------------------------------


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_sampling_stays_float32_under_mixed_precision(mixed_float16) -> None:
    z_mean = np.zeros((4, 3), np.float32)
    z_log_var = np.full((4, 3), 24.0, np.float32)  # exp(12) = 162755 > float16's 65504
    z = Sampling(seed=0)(z_mean, z_log_var)
    assert keras.backend.standardize_dtype(z.dtype) == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(z)).all()


def test_a_few_steps_train_under_mixed_float16_on_the_cpu(mnist, mixed_float16) -> None:
    vae = build_vae({**TINY, "predictor": True}, seed=0)
    assert vae.encoder.layers[1].compute_dtype == "float16"  # the policy really is on
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, labels = mnist.train.images[:128], mnist.train.labels[:128]
    history = vae.fit(images, labels, batch_size=32, epochs=2, verbose=0, shuffle=False)
    for name in ("loss", "reconstruction_loss", "kl_loss", "predictor_loss"):
        assert all(math.isfinite(v) for v in history.history[name]), name
    outputs = vae(images[:8], training=True)
    loss = vae.compute_loss(images[:8], labels[:8], outputs)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32" and math.isfinite(float(loss))
    assert keras.backend.standardize_dtype(outputs["reconstruction"].dtype) == "float32"


def test_mixed_precision_is_not_enabled_without_a_capable_gpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backend, "_device", None)
    monkeypatch.setattr(backend, "_mixed_precision_refusal_logged", False)
    with caplog.at_level(logging.INFO, logger="search.backend"):
        described = configure_device(mixed_precision=True)
        configure_device(mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "mixed precision" not in described
    refusals = [r for r in caplog.messages if r.startswith("mixed precision not enabled")]
    assert refusals == [
        "mixed precision not enabled: no GPU (float16 on a CPU is slower, not faster)"
    ]


# -- honest device records --------------------------------------------------------------------


def test_a_failed_memory_growth_setting_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # TensorFlow refuses memory growth for a device that is not a GPU: the same refusal path
    # as a GPU TensorFlow already initialised.
    with caplog.at_level(logging.WARNING, logger="search.backend"):
        backend.set_memory_growth(tf.config.list_physical_devices("CPU"))
    assert any("memory growth not set on" in m for m in caplog.messages), caplog.messages


def test_an_assigned_gpu_that_tensorflow_cannot_see_is_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backend, "_device", None)
    monkeypatch.setenv(backend.ASSIGNED_DEVICE_ENV, "GPU 2 (NVIDIA H100 80GB HBM3, GPU-2222)")
    described = configure_device()
    assert described.startswith("CPU (")
    assert "GPU 2 (NVIDIA H100 80GB HBM3, GPU-2222) was assigned but TensorFlow sees no GPU" in (
        described
    )


@pytest.mark.slow
def test_deterministic_training_from_the_command_line(tmp_path) -> None:
    from tests.conftest import run_cli

    done = run_cli(
        "train", "--deterministic", "--epochs", "1", "--subset", "128", "--data", "bundled",
        "--latent-dim", "2", "--layers", "1", "--filters", "4", "--dense-units", "8",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    device = [line for line in done.stdout.splitlines() if line.startswith("device")]
    assert device and device[0].endswith("deterministic ops"), done.stdout


# -- keeping the device busy ------------------------------------------------------------------


def test_steps_per_execution_runs_the_same_training(mnist) -> None:
    """Several batches per call into TensorFlow change when the host looks, not the math."""
    data = _small(mnist, 200)  # 4 batches of 64, the last one short
    one = train_vae(TINY, data, TrainConfig(**{**CONFIG.__dict__, "steps_per_execution": 1}))
    for steps in (3, TrainConfig().steps_per_execution):
        several = train_vae(
            TINY, data, TrainConfig(**{**CONFIG.__dict__, "steps_per_execution": steps})
        )
        assert several.epochs_run == one.epochs_run == CONFIG.epochs
        assert several.val_mse == pytest.approx(one.val_mse, abs=1e-6)
        assert several.curve[-1]["loss"] == pytest.approx(one.curve[-1]["loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("details", "mixed"),
    [
        ({"device_name": "Tesla P100-PCIE-16GB", "compute_capability": (6, 0)}, False),
        ({"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)}, True),
        ({"device_name": "Tesla V100-SXM2-16GB", "compute_capability": (7, 0)}, True),
    ],
)
def test_mixed_precision_follows_the_compute_capability(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, details, mixed
) -> None:
    """TensorFlow's own device details of a GPU decide; the policy really is switched."""
    monkeypatch.delenv(backend.ASSIGNED_DEVICE_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setattr(
        backend, "_device",
        backend.describe_gpu(details["device_name"], details["compute_capability"], 1),
    )  # fmt: skip
    monkeypatch.setattr(backend, "_mixed_precision_refusal_logged", False)
    try:
        with caplog.at_level(logging.INFO, logger="search.backend"):
            described = configure_device(mixed_precision=True)
        policy = keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy("float32")
    major, minor = details["compute_capability"]
    assert described.startswith(
        f"GPU 3 ({details['device_name']}), compute capability {major}.{minor}"
    )
    assert policy == ("mixed_float16" if mixed else "float32")
    assert described.endswith(", mixed precision") == mixed
    refused = [m for m in caplog.messages if m.startswith("mixed precision not enabled")]
    assert refused == ([] if mixed else [
        f"mixed precision not enabled: {details['device_name']} has compute capability "
        f"{major}.{minor}, below 7.0"
    ])  # fmt: skip
