"""A run's two budgets: how many trials the study should hold (shared by every worker), and
what one trial's training costs and sees (one study holds one such budget)."""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from search import defaults, records
from search.errors import UsageError
from search.run.options import RunOptions
from search.run.process import STOP

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
log = logging.getLogger("search.run")
BUDGET_POLL_S = 2.0  # how often a worker waiting for the others' last trials looks again


class BudgetReached(Exception):
    """A worker found the trial budget already used up by the others."""


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def claim_budget(study: optuna.Study, trial: optuna.Trial, target_total: int) -> None:
    """With several workers, only the first `target_total` trials may train.

    `budget_left` already keeps workers from creating trials the budget has no room for;
    this covers two workers that passed that check at the same moment. Each checks before
    training: finished trials plus running trials with a smaller number. Trial numbers are
    unique and ordered, so exactly the budget trains, whatever the timing. While the budget is
    full only because of trials still running, wait: one of them may die and be retried, and
    then this trial is needed. Once it is full of finished trials, the surplus trial ends at
    once (FAIL, said why) and stops.
    """
    while True:
        STOP.check()
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        running_ahead = sum(
            1 for t in trials if t.state == TrialState.RUNNING and t.number < trial.number
        )
        if finished + running_ahead < target_total:
            return
        if finished >= target_total or running_ahead == 0:
            break
        time.sleep(BUDGET_POLL_S)
    records.write_surplus(trial)  # the progress lines leave it out: it never trained
    study.stop()
    raise BudgetReached()


def budget_left(study: optuna.Study, target_total: int) -> bool:
    """Is another trial needed? Waits while only still-running trials could fill the budget.

    Running trials may belong to other workers: when they finish, the budget is full; when
    their worker dies, heartbeats fail them and queue a retry, which this worker may run.
    """
    said = False
    while True:
        STOP.check()
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        if finished >= target_total:
            return False
        if finished + running < target_total:
            return True
        if not said:
            log.info("%s", waiting_line(study, running))
            said = True
        optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
        time.sleep(BUDGET_POLL_S)


def waiting_line(study: optuna.Study, running: int) -> str:
    """What a worker says while it waits for RUNNING trials it does not run itself."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)  # Optuna's cache around an RDB storage
    interval = getattr(storage, "heartbeat_interval", None)
    grace = getattr(storage, "grace_period", None) or (interval or 0) * defaults.GRACE_PERIODS
    line = (
        f"waiting: {running} trial(s) RUNNING elsewhere would fill the budget; another worker "
        "may be training them"
    )
    if interval:
        return line + (
            f", or its worker died: then it is failed and retried once it has had no "
            f"heartbeat for {grace} s (Ctrl-C to stop waiting)"
        )
    return line + " (without heartbeats a dead worker's trial is never failed; Ctrl-C to stop)"


def study_budget(options: RunOptions, provenance: dict[str, Any]) -> dict[str, Any]:
    """What one trial's training costs and sees: stored once, checked on every resume.

    Read from the preset, not from a TrainConfig: the check runs before TensorFlow is imported.
    """
    preset = defaults.PRESETS[options.preset]
    counts = provenance["counts"]
    return {
        "preset": options.preset,
        "epochs": options.epochs or preset.epochs,
        "subset": counts["train"] - counts.get("unlabeled", 0),
        "extra_unlabeled": options.extra_unlabeled,
        "batch_size": preset.batch_size,
        "validation_subset": preset.validation_subset,
        "backend": options.backend,
    }


def check_same_budget(
    storage: optuna.storages.BaseStorage,
    options: RunOptions,
    provenance: dict[str, Any],
) -> None:
    """Refuse to resume a study under another budget; reads storage, writes nothing.

    Rungs, fronts and means only compare trials trained alike: the same preset, epochs,
    training images, data, unlabeled extra and Keras backend. A study holds one budget.
    """
    try:
        study_id = storage.get_study_id_from_name(options.study)
    except KeyError:
        return  # a new study
    stored = storage.get_study_user_attrs(study_id)
    budget, data = records.read_budget(stored), records.read_data(stored)
    if budget is None or data is None:
        return  # not written by vae-search's run (or before budgets were recorded)
    now = study_budget(options, provenance)
    names = {
        "preset": "--preset",
        "epochs": "--epochs",
        "subset": "--subset (training images)",
        "extra_unlabeled": "--extra-unlabeled",
        "backend": "--backend",
    }
    # A study from before backends were recorded trained under TensorFlow.
    budget = {"backend": defaults.BACKEND, **budget}
    changed = [
        f"{flag} {budget[key]} (now {now[key]})"
        for key, flag in names.items()
        if key in budget and budget[key] != now[key]
    ]
    source = lambda p: (p.get("source"), p.get("path"), p.get("sha256"))  # noqa: E731
    if source(data) != source(provenance):
        was = data.get("path") or data.get("source")
        changed.append(f"--data {was} (now {provenance.get('path') or provenance['source']})")
    if changed:
        raise UsageError(
            f"study {options.study!r} was run with {', '.join(changed)}; one study holds one "
            "budget: resume with its options, or start a new study with --study NEW_NAME"
        )
