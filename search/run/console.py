"""What a run prints: its plan, one line per finished trial with a progress bar, the
resume command after an interruption, and the front with the recommendation at the end."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from search import configurations as configs
from search import records
from search import storage as storage_module
from search.pruning import ParetoPrunerConfig
from search.run import budget, eta
from search.run.budget import FINISHED, finished_count
from search.run.options import RunOptions
from search.run.setup import MAXIMIZE
from search.summaries import count_states

log = logging.getLogger("search.run")


def configure_logging() -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr)  # no-op after quiet.py's
    # Our INFO lines only: the root stays at WARNING, so a library's INFO record (absl's
    # "Downloading data from ...", matplotlib's "generated new fontManager") never shows.
    logging.getLogger("search").setLevel(logging.INFO)
    # Our progress lines replace Optuna's per-trial INFO lines and its failure tracebacks.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in params.items())


def log_plan(
    options: RunOptions,
    url: str,
    already: int,
    target_total: int,
    train_images: int,
    epochs: int,
    batch_size: int,
    pruner: ParetoPrunerConfig,
) -> None:
    """The run's first line: the study, what it holds, and what this run will do."""
    pruning = "off"
    if options.pruning:
        pruning = f"on for sampled trials, rungs at {pruner.rungs} epochs"
        if pruner.noise_margin:
            pruning += f", noise margin {pruner.noise_margin:g} seed SD"
        if pruner.envelope_min_complete:
            pruning += f", envelope guard after {pruner.envelope_min_complete} completed trials"
    confirming = (
        f"then front configurations confirmed to {1 + options.confirm} seeds"
        if options.confirm and options.is_parent
        else "no confirmation runs"
    )
    log.info(
        "study %r in %s: %d finished trials, running %d more (%s preset: %d epochs, "
        "%d training images, batch %d; sampler %s; pruning %s; %s)",
        options.study,
        storage_module.redact_url(url),
        already,
        target_total - already,
        options.preset,
        epochs,
        train_images,
        batch_size,
        options.sampler,
        pruning,
        confirming,
    )


class Progress:
    """One line per finished trial, a progress bar, and the stop rules: the trial budget, and
    `max_failures` failed trials in this run (then `too_many_failures` says why).

    After the first finished trial it prints the measured time per trial and per epoch and
    the estimate for the `left(study)` trials still to run; every trial line and the bar
    then carry the estimate (search/run/eta.py).
    """

    def __init__(
        self,
        target_total: int | None,
        requested: int,
        max_failures: int,
        left: Callable[[optuna.Study], int] | None = None,
        device: str = "this device",
    ) -> None:
        from tqdm import tqdm

        self.target_total = target_total
        self.max_failures = max_failures
        self.left = left
        self.device = device
        self.measured = eta.Measured()
        self.failures = 0
        self.finished = 0  # trials this process finished (COMPLETE or PRUNED)
        self.too_many_failures: str | None = None
        self.bar = tqdm(
            total=requested,
            desc="trials",
            unit="trial",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            leave=False,
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = records.trial_attrs(trial)
        if records.is_surplus(attrs):
            return  # never trained: another worker's trial filled the budget
        params = describe(trial.params)
        if trial.state == TrialState.COMPLETE:
            outcome = f"SSIM {trial.values[0]:.4f}  MSE {trial.values[1]:.5f}"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned: {records.read_pruning_decision(attrs).reason or ''}"
        else:
            outcome = f"failed: {records.read_fail_reason(attrs) or 'see the log'}"
            self.failures += 1
        self.finished += trial.state in FINISHED
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        epochs_run = records.read_epochs_run(attrs) or 0
        estimate = ""
        if trial.state in FINISHED and self.left is not None:
            self.measured.add(seconds, epochs_run)
            left = self.left(study)
            estimate = f"  rest ~{eta.duration(self.measured.estimate(left))} (estimate)"
            self.bar.set_postfix_str(f"rest ~{eta.duration(self.measured.estimate(left))}")
        self.bar.write(
            f"trial {trial.number:>4}  {params}  {outcome}  epochs {epochs_run}  {seconds:.1f}s"
            + estimate
        )
        if len(self.measured.seconds) == 1 and estimate:
            self.bar.write(self.measured.line(left, self.device))
        self.bar.update(1)
        if self.target_total is not None and finished_count(study) >= self.target_total:
            study.stop()
        elif self.failures >= self.max_failures:
            self.too_many_failures = (
                f"stopping: {self.failures} trials failed in this run (the limit is "
                f"{self.max_failures}); each failed trial's fail_reason says why "
                "(`python -m search studies`, the dashboard)"
            )
            study.stop()


def what_was_interrupted(study: optuna.Study, number: int | None) -> str:
    """The truth about the trial a signal stopped, as stored (for the stop message)."""
    if number is None:
        return "no trial of this process was training, none was marked FAIL"
    state = next((t.state for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if state == TrialState.FAIL:
        return f"trial {number}, which was training, was marked FAIL"
    return f"trial {number} was left {state.name if state is not None else 'unknown'}"


def resume_command(options: RunOptions, target_total: int | None, study: optuna.Study) -> str:
    """The command that goes on with this study as stored: its budget and data too (without
    them a resume under another preset's defaults would be refused)."""
    return resume_from(options, target_total, records.study_attrs(study), finished_count(study))


def resume_from(
    options: RunOptions,
    target_total: int | None,
    stored: dict[str, Any],
    finished: int,
    extra: Sequence[str] = (),
) -> str:
    """`resume_command` from the study's records and finished-trial count as read before
    (the storage may no longer answer); `extra` options come first."""
    parts = [*extra, *budget.study_options(options)]
    if options.total_trials:  # the study-wide budget: the same command goes on
        parts += ["--total-trials", str(options.total_trials)]
    if target_total is not None:
        parts += ["--trials", str(max(target_total - finished, 1))]
    stored_budget, data = records.read_budget(stored), records.read_data(stored)
    if stored_budget is not None and data is not None:
        parts += budget.budget_options(stored_budget, data)
    return budget.command(parts)


def print_summary(
    study: optuna.Study, options: RunOptions, configurations: list[configs.Configuration]
) -> None:
    """Trial counts by state, the Pareto front of configurations and the recommendation.

    Trials given back unrun (the budget was full, search/run/total.py) are counted apart."""
    trials = study.get_trials(deepcopy=False)
    given_back = {
        t.number
        for t in trials
        if t.state == TrialState.FAIL and records.is_surplus(records.trial_attrs(t))
    }
    counts = count_states(t for t in trials if t.number not in given_back)
    print(
        f"\nstudy {options.study!r}: "
        + ", ".join(f"{n.lower()} {c}" for n, c in counts.items() if c)
        + (f" (and {len(given_back)} given back unrun)" if given_back else "")
    )
    print_front(configurations)


def print_front(configurations: list[configs.Configuration]) -> None:
    """The front of configuration means (n and SD beside each) and the recommendation."""
    front = configs.pareto_front(configurations, MAXIMIZE)
    if not front:
        return
    print("Pareto front (validation; configurations, mean over seeds):")
    print(f"  {'trial':>5}  {'n':>2}  {'SSIM':>7}  {'SD':>6}  {'MSE':>8}  {'SD':>8}  params")
    for c in sorted(front, key=lambda c: c.mean[1]):
        sd = [f"{c.sd[0]:6.4f}", f"{c.sd[1]:8.5f}"] if c.sd else ["-", "-"]
        print(
            f"  {c.first:>5}  {c.n:>2}  {c.mean[0]:7.4f}  {sd[0]:>6}  {c.mean[1]:8.5f}  "
            f"{sd[1]:>8}  {describe(c.params)}"
        )
    choice = configs.choose(front, MAXIMIZE, configurations)
    if choice is None:
        return
    chosen = choice.configuration
    print(
        f"recommended: trial {chosen.first}'s configuration ({describe(chosen.params)}), "
        f"SSIM {chosen.mean[0]:.4f}, MSE {chosen.mean[1]:.5f}, mean over {chosen.n} "
        f"seed{'s' if chosen.n != 1 else ''}; {choice.method}"
    )
