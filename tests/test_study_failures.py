"""Trials that fail inside a real study: NaN loss, out of memory, and too many failures.

The study runs in this process through the CLI's own entry point (`search.cli.main`), with
real Keras training on the bundled subset. The out-of-memory error is raised by TensorFlow's
own exception class from a callback inside a real `fit`, as an allocation failure would be.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search import cli
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
]
SMALL = ["--space", "filters=8,16", "--space", "dense_units=16,32"]


def _trials(tmp_path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path}/studies/{name}.db"
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _out_of_memory_in_fit(
    monkeypatch: pytest.MonkeyPatch, trainings: set[int], epoch: int = 1
) -> None:
    """Make the n-th `fit` of this process (n in `trainings`, from 0) run out of memory in
    epoch `epoch` (from 0; by default after the first epoch was recorded)."""
    import keras
    import tensorflow as tf

    real_fit = keras.Model.fit
    calls = [0]

    class OutOfMemory(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == epoch:
                raise tf.errors.ResourceExhaustedError(
                    None, None, "OOM when allocating tensor with shape[64,16,28,28] (injected)"
                )

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    def fit(self, *args, callbacks=None, **kwargs):
        n, calls[0] = calls[0], calls[0] + 1
        extra = [OutOfMemory()] if n in trainings else []
        return real_fit(self, *args, callbacks=[*(callbacks or []), *extra], **kwargs)

    monkeypatch.setattr(VAE, "fit", fit, raising=False)


def _assert_failed_with_curve(trial: optuna.trial.FrozenTrial, reason: str) -> None:
    assert trial.state == TrialState.FAIL
    assert reason in trial.user_attrs["fail_reason"].lower(), trial.user_attrs
    curve = trial.user_attrs["curve"]
    assert [row["epoch"] for row in curve] == [1]  # the epoch before the failure is kept
    assert trial.user_attrs["epochs_run"] == 1


def _output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything the run said: progress lines (stdout) and its log (stderr in a real run)."""
    captured = capsys.readouterr()
    return captured.out + captured.err + caplog.text


def test_nan_loss_fails_its_trial_and_the_study_goes_on(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    # beta = 1e38 makes the KL term overflow float32 in the second epoch: a real NaN loss.
    overflow = ["--space", "beta=0.25:1e38", "--sweep", "beta=1e38,1"]
    code = cli.main([*TINY, *overflow, "--study", "nan", "--trials", "1"])
    err = _output(capsys, caplog)
    assert code == 0, err[-3000:]
    nan, healthy = _trials(tmp_path, "nan")
    assert nan.params["beta"] == 1e38
    _assert_failed_with_curve(nan, "nan or infinite")
    assert "failed: loss became NaN" in err
    assert healthy.state == TrialState.COMPLETE and healthy.params["beta"] == 1


def test_out_of_memory_fails_its_trial_and_the_study_goes_on(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    _out_of_memory_in_fit(monkeypatch, trainings={0})
    code = cli.main([*TINY, *SMALL, "--study", "oom", "--trials", "1"])
    err = _output(capsys, caplog)
    assert code == 0, err[-3000:]
    oom, healthy = _trials(tmp_path, "oom")
    _assert_failed_with_curve(oom, "out of memory")
    assert "failed: out of memory" in err
    assert healthy.state == TrialState.COMPLETE and len(healthy.user_attrs["curve"]) == 2


def test_too_many_failures_stop_the_run_with_exit_1(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    _out_of_memory_in_fit(monkeypatch, trainings=set(range(100)), epoch=0)
    code = cli.main([*TINY, *SMALL, "--study", "doomed", "--trials", "2"])
    err = _output(capsys, caplog)
    assert code == 1, err[-3000:]
    trials = _trials(tmp_path, "doomed")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # max(3, 2 requested), no more
    assert "error: stopping: 3 trials failed in this run (the limit is 3)" in err
