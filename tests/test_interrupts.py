"""A signal that lands inside TensorFlow or Keras still reads as the interruption it is."""

from __future__ import annotations

import optuna
import pytest

import search.training
from search.run.objective import Objective
from search.run.options import RunOptions
from search.run.process import STOP
from search.space import default_space


def test_an_error_keras_raises_while_a_stop_is_pending_is_the_interruption(monkeypatch) -> None:
    def interrupted_inside_keras(*args, **kwargs):
        STOP.signum = 2  # the handler ran; Keras turned its KeyboardInterrupt into a TypeError
        raise TypeError("Exception encountered when calling Reshape.call()")

    monkeypatch.setattr(search.training, "train_vae", interrupted_inside_keras)
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = Objective(RunOptions(preset="smoke", pruning=False), default_space(), None, None, 1)
    trial = study.ask()
    try:
        with pytest.raises(KeyboardInterrupt):
            objective(trial)
    finally:
        STOP.signum = None
    assert study.trials[0].user_attrs["fail_reason"].startswith("interrupted")


def test_the_same_error_without_a_stop_stays_a_bug(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(search.training, "train_vae", broken)
    STOP.signum = None
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = Objective(RunOptions(preset="smoke", pruning=False), default_space(), None, None, 1)
    with pytest.raises(TypeError, match="a bug"):
        objective(study.ask())
