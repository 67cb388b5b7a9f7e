"""`run --total-trials N`: one budget for the whole study, however many workers on however
many machines run it, whenever they start or restart.

The count is of finished (completed or pruned) *sampled* trials: those the sampler chose.
Designed trials (sweeps, repeats, confirmation runs: enqueued, Optuna's `fixed_params`) are
counted apart and run once each, whoever asked for them first.

Exact under races: a worker asks Optuna for a trial first and only then decides whether it
may train (`claim`). Trial numbers are unique and ordered, so each sampled trial is ranked
among the study's sampled trials by number: it trains only if the finished ones plus the
running ones ahead of it leave room. Two workers that both saw N-1 both get a trial; the one
with the larger number waits for the other, then gives its trial back (FAIL, marked
`surplus`: never trained, left out of every count and of the report) or, if the other died,
trains. A designed trial that repeats one the study already holds (two workers enqueued the
same sweep at once) is given back the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.run import budget
from search.run.budget import FINISHED, BudgetReached
from search.stopping import STOP

log = logging.getLogger("search.run")


def _given_back(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and records.is_surplus(records.trial_attrs(trial))


def is_sampled(trial: FrozenTrial) -> bool:
    """Chosen by the sampler (not enqueued), and not a trial given back unrun."""
    return not records.enqueued(trial.system_attrs) and not _given_back(trial)


def sampled_counts(trials: Iterable[FrozenTrial]) -> tuple[int, int, int]:
    """(finished sampled, running sampled, waiting of any kind) trials."""
    finished = running = waiting = 0
    for t in trials:
        if t.state == TrialState.WAITING:
            waiting += 1
        elif is_sampled(t) and t.state in FINISHED:
            finished += 1
        elif is_sampled(t) and t.state == TrialState.RUNNING:
            running += 1
    return finished, running, waiting


def trials_left(study: optuna.Study, total: int) -> int:
    """Trials still to train for the study: sampled ones short of `total`, plus waiting ones."""
    finished, running, waiting = sampled_counts(study.get_trials(deepcopy=False))
    return max(total - finished - running, 0) + waiting + running


def sampling_left(study: optuna.Study, total: int) -> bool:
    """Is another trial needed? Waits while only still-running sampled trials could fill the
    budget (their worker may die; heartbeats then fail them and queue a retry)."""
    said = False
    while True:
        STOP.check()
        finished, running, waiting = sampled_counts(study.get_trials(deepcopy=False))
        if waiting:
            return True  # designed trials and retries: trained whatever the budget
        if finished >= total:
            return False
        if finished + running < total:
            return True
        if not said:
            log.info("%s", budget.waiting_line(study, running))
            said = True
        optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
        time.sleep(budget.BUDGET_POLL_S)


def _give_back(trial: optuna.Trial, why: str) -> None:
    records.write_surplus(trial)
    log.info("trial %d given back unrun: %s", trial.number, why)
    raise BudgetReached()


def claim(study: optuna.Study, trial: optuna.Trial, total: int, seeds: int) -> None:
    """May this trial train? Returns if so; else gives it back (FAIL, surplus) and raises
    BudgetReached. `seeds`: the runs a confirmed configuration gets (1 + --confirm)."""
    while True:
        STOP.check()
        trials = study.get_trials(deepcopy=False)
        me = next(t for t in trials if t.number == trial.number)
        if records.enqueued(me.system_attrs):
            why = _repeated_design(me, trials, seeds)
            if why:
                _give_back(trial, why)
            return
        finished = sum(1 for t in trials if is_sampled(t) and t.state in FINISHED)
        ahead = sum(
            1
            for t in trials
            if is_sampled(t) and t.state == TrialState.RUNNING and t.number < trial.number
        )
        if finished + ahead < total:
            return
        if finished >= total or ahead == 0:
            _give_back(trial, f"the study holds its {total} sampled trials (--total-trials)")
        time.sleep(budget.BUDGET_POLL_S)


def _repeated_design(me: FrozenTrial, trials: list[FrozenTrial], seeds: int) -> str | None:
    """Why an enqueued trial repeats one the study already holds; None when it does not.

    Only trials ahead of it (smaller numbers) and not failed count, so of two copies the
    first runs, and the retry of a failed one runs too.
    """
    ahead = [t for t in trials if t.number < me.number and t.state != TrialState.FAIL]
    point = records.read_sweep(me.user_attrs)
    if point and any(records.read_sweep(t.user_attrs) == point for t in ahead):
        return f"another trial already runs sweep point {point}"
    first = records.read_confirms(me.user_attrs)
    if first is not None:
        runs = sum(1 for t in ahead if _params(t) == _params(me))
        if runs >= seeds:
            return f"trial {first}'s configuration already has its {seeds} runs"
    return None


def _params(trial: FrozenTrial) -> dict[str, Any]:
    """What the trial trains: its params, or before it suggested them (a claim comes first)
    the parameters it was enqueued with."""
    fixed = trial.system_attrs.get(records.OPTUNA_FIXED_PARAMS)
    return dict(trial.params) or (dict(fixed) if isinstance(fixed, dict) else {})


def sweep_points_to_enqueue(
    study: optuna.Study, enqueued: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The sweep points the study does not hold yet (any state but FAIL): with a study-wide
    budget every worker may name the same sweep, and it runs once."""
    held = [
        records.read_sweep(t.user_attrs)
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.FAIL
    ]
    return [
        (params, point)
        for params, point in enqueued
        if records.read_sweep(records.sweep_tag(point)) not in held
    ]


def plan_line(study: optuna.Study, total: int) -> str:
    finished, running, waiting = sampled_counts(study.get_trials(deepcopy=False))
    if finished >= total and not waiting:
        return (
            f"--total-trials {total}: the study already holds {finished} finished sampled "
            "trials; no more are sampled"
        )
    return (
        f"--total-trials {total}: the study holds {finished} finished sampled trial(s) and "
        f"{running} running; this worker samples until {total} are finished, with every "
        f"other worker on the study (designed trials counted apart: {waiting} waiting)"
    )
