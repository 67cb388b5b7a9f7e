"""How long the rest of a run will take, from what this device measured: the trials this
process finished, or (before the first one, on a CPU with the full preset) a few timed
training steps of the baseline model.

Nothing here is a constant of some other machine: every number is measured now, here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from search import defaults

# What `calibrate` times per preset, after one untimed pass that traces the graph: enough
# to be within tens of percent on a loaded 2-core CPU, in a few seconds.
CALIBRATION_EPOCHS = 2  # timed passes over STEPS_PER_EXECUTION batches, after one untimed
SCORED_IMAGES = 250  # validation images scored (after one untimed pass) to time scoring


def duration(seconds: float) -> str:
    """`42 s`, `13 min`, `5.2 h`, `3.1 days`: what a person reads at a glance."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass
class Measured:
    """The finished (completed or pruned) trials this process trained: seconds and epochs."""

    seconds: list[float] = field(default_factory=list)
    epochs: int = 0

    def add(self, seconds: float, epochs: int) -> None:
        self.seconds.append(seconds)
        self.epochs += epochs

    @property
    def per_trial(self) -> float:
        return sum(self.seconds) / len(self.seconds) if self.seconds else math.nan

    @property
    def per_epoch(self) -> float:
        # Includes each trial's start (model build, tracing) and its final scoring: what a
        # trial costs, spread over the epochs it ran.
        return sum(self.seconds) / self.epochs if self.epochs else math.nan

    def estimate(self, left: int) -> float:
        """Seconds for `left` more trials: trials left x the mean seconds of the finished ones.

        The mean of finished trials, not seconds per epoch x planned epochs: it already holds
        the pruning seen so far (a pruned trial is shorter). Early trials are pruned less often
        (the pruner needs completed trials to judge against), so the estimate leans long.
        """
        return max(left, 0) * self.per_trial

    def line(self, left: int, device: str) -> str:
        """What `run` prints after a finished trial (the first one, then in the bar)."""
        n = len(self.seconds)
        rest = duration(self.estimate(left))
        return (
            f"time: {self.per_trial:.1f} s per trial, {self.per_epoch:.1f} s per epoch on "
            f"{device}; estimate for the {max(left, 0)} trial(s) left: {rest} "
            f"(an estimate: trials left x the mean of {n} finished trial{'s' if n != 1 else ''} "
            "in this process; pruned trials are shorter, other workers on the study shorten it)"
        )


@dataclass(frozen=True)
class PresetCost:
    """A preset's measured cost per trial on this device (`calibrate`): the model's start
    (build, compile, first traced step), its training steps and the images it scores."""

    preset: str
    start_s: float
    seconds_per_step: float
    steps_per_trial: int
    seconds_per_scored_image: float
    scored_per_trial: int

    @property
    def per_trial(self) -> float:
        return (
            self.start_s
            + self.seconds_per_step * self.steps_per_trial
            + self.seconds_per_scored_image * self.scored_per_trial
        )


def steps_per_trial(preset_name: str, train_images: int, epochs: int | None = None) -> int:
    """Training steps a trial of the preset runs to its last epoch (unpruned), on at most
    `train_images` images, for `epochs` (default: the preset's)."""
    preset = defaults.PRESETS[preset_name]
    images = min(train_images, preset.subset) if preset.subset else train_images
    return math.ceil(images / preset.batch_size) * (epochs or preset.epochs)


def scored_per_trial(preset_name: str, data: Any, epochs: int | None = None) -> int:
    """Images a trial scores: the validation subset after every epoch, then the validation
    split, the training subset and the test split (search/training.py)."""
    preset = defaults.PRESETS[preset_name]
    n_val, n_test = len(data.validation.images), len(data.test.images)
    return (
        min(preset.validation_subset, n_val) * (epochs or preset.epochs)
        + n_val
        + min(preset.train_eval_subset, len(data.train.images))
        + min(preset.test_eval_subset or n_test, n_test)
    )


def calibrate(
    presets: tuple[str, ...], data: Any, epochs: dict[str, int] | None = None
) -> list[PresetCost]:
    """Measure each preset's cost per trial on this device with the baseline model
    (defaults.MODEL): its build and first pass at the preset's batch size (tracing), then
    timed training steps, and the scoring of a few hundred images.
    `epochs`: a preset's epochs where the run changes them (--epochs).

    Seconds in all on a loaded 2-core CPU, most of it tracing.
    """
    import keras

    from search.model import build_vae
    from search.training import STEPS_PER_EXECUTION, score

    images = data.train.images
    scored = data.validation.images[:SCORED_IMAGES]
    costs = []
    for name in presets:
        batch_size = defaults.PRESETS[name].batch_size
        # as a trial trains: fit() with its steps per execution, one call's worth of batches
        # (a data set smaller than that is repeated)
        n = batch_size * STEPS_PER_EXECUTION
        batches = images[[i % len(images) for i in range(n)]]
        started = time.perf_counter()
        keras.backend.clear_session()
        vae = build_vae(dict(defaults.MODEL), seed=defaults.SEED)
        vae.compile(
            optimizer=keras.optimizers.Adam(defaults.LEARNING_RATE),
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        vae.fit(batches, batch_size=batch_size, epochs=1, verbose=0)  # traces the step
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        vae.fit(batches, batch_size=batch_size, epochs=CALIBRATION_EPOCHS, verbose=0)
        per_step = (time.perf_counter() - started) / (STEPS_PER_EXECUTION * CALIBRATION_EPOCHS)
        score(vae, scored)  # traced once
        started = time.perf_counter()
        score(vae, scored)
        per_image = (time.perf_counter() - started) / max(len(scored), 1)
        run_epochs = (epochs or {}).get(name)
        costs.append(
            PresetCost(
                name,
                start_s,
                per_step,
                steps_per_trial(name, len(images), run_epochs),
                per_image,
                scored_per_trial(name, data, run_epochs),
            )
        )
    keras.backend.clear_session()
    return costs


_warned: list[bool] = []  # this process said it already (confirmation rounds train again)


def cpu_full_preset_warning(data: Any, epochs: int, trials: int) -> str | None:
    """Calibrate, and the line a CPU run of the full preset prints before its first trial;
    None when this process said it already."""
    if _warned:
        return None
    _warned.append(True)
    full, quick = calibrate(("full", "quick"), data, {"full": epochs})
    return cpu_full_preset_line(full, quick, trials)


def cpu_full_preset_line(full: PresetCost, quick: PresetCost, trials: int) -> str:
    """The one line a CPU run of the full preset prints before its first trial."""
    return (
        f"warning: the full preset on a CPU: about {duration(full.per_trial)} a trial, "
        f"{duration(full.per_trial * trials)} for {trials} trial(s); --preset quick: about "
        f"{duration(quick.per_trial)} a trial, {duration(quick.per_trial * trials)} for "
        f"{trials} (an estimate, unpruned, from the baseline model's start, training steps and "
        "scoring, timed per preset on this CPU now); going on with full"
    )
