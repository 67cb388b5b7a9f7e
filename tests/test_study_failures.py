"""Trials that fail inside a real study: NaN loss, out of memory, and too many failures.

The study runs in this process through the CLI's own entry point (`search.cli.main`), with
real Keras training on the bundled subset. Faults are injected from a callback inside a real
`fit`: TensorFlow's own out-of-memory exception, as an allocation failure raises it, and
weights set to NaN, as a diverging optimiser leaves them (the loss then really is NaN).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import cli, records
from search.model import VAE

TINY = [
    "run",
    "--preset",
    "smoke",
    "--data",
    "bundled",
    "--subset",
    "128",
    "--epochs",
    "2",
    "--no-pruning",
    "--keep-models",
    "none",
    "--no-report",
    "--sampler",
    "random",
    "--confirm",
    "0",  # these tests count trials exactly
    "--workers",
    "1",  # in this process, where the faults are patched in
]
SMALL = ["--space", "filters=8,16", "--space", "dense_units=16,32"]


def _trials(tmp_path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path}/studies/{name}.db"
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _fail_in_fit(
    monkeypatch: pytest.MonkeyPatch,
    trainings: set[int],
    fault: Callable[[keras.Model], None],
    epoch: int = 1,
) -> None:
    """Run `fault(model)` before every batch of epoch `epoch` (from 0; by default after the
    first epoch was recorded) of the n-th `fit` of this process, for n in `trainings`."""
    real_fit = keras.Model.fit
    calls = [0]

    class Fault(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == epoch:
                fault(self.model)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    def fit(self, *args, callbacks=None, **kwargs):
        n, calls[0] = calls[0], calls[0] + 1
        extra = [Fault()] if n in trainings else []
        return real_fit(self, *args, callbacks=[*(callbacks or []), *extra], **kwargs)

    monkeypatch.setattr(VAE, "fit", fit, raising=False)


def _out_of_memory(model: keras.Model) -> None:
    """TensorFlow's own allocation-failure error, as a GPU out of memory raises it."""
    import tensorflow as tf

    raise tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[64,16,28,28] (injected)"
    )


def _diverged(model: keras.Model) -> None:
    """Weights gone to NaN, as a diverging optimiser leaves them: the next real forward pass
    computes a NaN loss, which training must catch."""
    for variable in model.trainable_variables:
        variable.assign(np.full(variable.shape, np.nan, dtype=variable.dtype))


def _assert_failed_with_curve(trial: optuna.trial.FrozenTrial, reason: str) -> None:
    assert trial.state == TrialState.FAIL
    assert reason in trial.user_attrs["fail_reason"].lower(), trial.user_attrs
    curve = records.trial_attrs(trial)["curve"]
    assert [row["epoch"] for row in curve] == [1]  # the epoch before the failure is kept
    assert trial.user_attrs["epochs_run"] == 1


def _output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything the run said: progress lines (stdout) and its log (stderr in a real run)."""
    captured = capsys.readouterr()
    return captured.out + captured.err + caplog.text


@pytest.mark.slow
def test_nan_loss_fails_its_trial_and_the_study_goes_on(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    _fail_in_fit(monkeypatch, trainings={0}, fault=_diverged)
    code = cli.main([*TINY, *SMALL, "--study", "nan", "--trials", "1"])
    err = _output(capsys, caplog)
    assert code == 0, err[-3000:]
    nan, healthy = _trials(tmp_path, "nan")
    _assert_failed_with_curve(nan, "nan or infinite")
    assert "failed: loss became NaN" in err
    assert healthy.state == TrialState.COMPLETE and len(records.trial_attrs(healthy)["curve"]) == 2


@pytest.mark.slow
def test_out_of_memory_fails_its_trial_and_the_study_goes_on(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    _fail_in_fit(monkeypatch, trainings={0}, fault=_out_of_memory)
    code = cli.main([*TINY, *SMALL, "--study", "oom", "--trials", "1"])
    err = _output(capsys, caplog)
    assert code == 0, err[-3000:]
    oom, healthy = _trials(tmp_path, "oom")
    _assert_failed_with_curve(oom, "out of memory")
    assert "failed: out of memory" in err
    assert healthy.state == TrialState.COMPLETE and len(records.trial_attrs(healthy)["curve"]) == 2


@pytest.mark.slow
def test_too_many_failures_stop_the_run_with_exit_1(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    _fail_in_fit(monkeypatch, trainings=set(range(100)), fault=_out_of_memory, epoch=0)
    code = cli.main([*TINY, *SMALL, "--study", "doomed", "--trials", "2"])
    err = _output(capsys, caplog)
    assert code == 1, err[-3000:]
    trials = _trials(tmp_path, "doomed")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # max(3, 2 requested), no more
    assert "error: stopping: 3 trials failed in this run (the limit is 3)" in err
