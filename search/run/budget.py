"""A run's two budgets: how many trials the study should hold (shared by every worker), and
what one trial's training costs and sees (one study holds one such budget)."""

from __future__ import annotations

import logging
import os
import shlex
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from search import backend as keras_backend
from search import defaults, records
from search import storage as storage_module
from search.errors import UsageError
from search.run.options import RunOptions
from search.run.process import without_storage
from search.stopping import STOP

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


LIBRARY_SOURCES = ("keras", "bundled")  # --data values that name no file
BUDGET_FLAGS = {
    "preset": "--preset",
    "epochs": "--epochs",
    "subset": "--subset (training images)",
    "extra_unlabeled": "--extra-unlabeled",
    "backend": "--backend",
}


def _stored(
    storage: optuna.storages.BaseStorage, name: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stored budget and data provenance of study `name`; None for a new study, or one
    not written by vae-search's run (or before budgets were recorded)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    stored = records.stored_study_attrs(storage, study_id)
    budget, data = records.read_budget(stored), records.read_data(stored)
    if budget is None or data is None:
        return None
    # A study from before backends were recorded trained under TensorFlow.
    return {"backend": defaults.BACKEND, **budget}, data


def check_budget_before_data(storage: optuna.storages.BaseStorage, options: RunOptions) -> None:
    """The part of `check_same_budget` that needs no data: run before any is loaded (or
    downloaded), so a resume under another preset is refused in a second, not after it.

    Preset, epochs and the unlabeled extra are options; the training images are known early
    when the stored count is above what is asked for (fewer can come from a smaller source,
    which only the data tells); the source when it is named (`keras`, `bundled`, a file
    against a study of keras' or the bundled images, or `auto` against a file's study).
    """
    found = _stored(storage, options.study)
    if found is None:
        return
    budget, data = found
    preset = defaults.PRESETS[options.preset]
    now: dict[str, Any] = {
        "preset": options.preset,
        "epochs": options.epochs or preset.epochs,
        "extra_unlabeled": options.extra_unlabeled,
        "backend": options.backend,
    }
    changed = [
        f"{BUDGET_FLAGS[key]} {budget[key]} (now {value})"
        for key, value in now.items()
        if key in budget and budget[key] != value
    ]
    asked = options.subset if options.subset is not None else preset.subset
    if asked is not None and isinstance(budget.get("subset"), int) and budget["subset"] > asked:
        changed.append(f"{BUDGET_FLAGS['subset']} {budget['subset']} (now {asked})")
    was = data.get("source")
    named = options.data if options.data in LIBRARY_SOURCES else "a file"
    stored = was if was in LIBRARY_SOURCES else "a file"  # "file" or "idx"
    if (options.data != "auto" and named != stored) or (
        options.data == "auto" and stored == "a file"
    ):
        changed.append(f"--data {data.get('path') or was} (now {options.data})")
    if changed:
        _refuse(options, changed, budget, data)


def check_same_budget(
    storage: optuna.storages.BaseStorage,
    options: RunOptions,
    provenance: dict[str, Any],
) -> None:
    """Refuse to resume a study under another budget; reads storage, writes nothing.

    Rungs, fronts and means only compare trials trained alike: the same preset, epochs,
    training images, data, unlabeled extra and Keras backend. A study holds one budget. The
    data is the same when its source and content (sha256) are: a file moved, or named by
    another path, still is.
    """
    found = _stored(storage, options.study)
    if found is None:
        return
    budget, data = found
    now = study_budget(options, provenance)
    changed = [
        f"{flag} {budget[key]} (now {now[key]})"
        for key, flag in BUDGET_FLAGS.items()
        if key in budget and budget[key] != now[key]
    ]
    source = lambda p: (p.get("source"), p.get("sha256"))  # noqa: E731
    if source(data) != source(provenance):
        was = data.get("path") or data.get("source")
        changed.append(f"--data {was} (now {provenance.get('path') or provenance['source']})")
    if changed:
        _refuse(options, changed, budget, data)


def _refuse(
    options: RunOptions, changed: list[str], budget: dict[str, Any], data: dict[str, Any]
) -> None:
    trials = options.trials or defaults.TRIALS
    resume = command(
        [*study_options(options), "--trials", str(trials), *budget_options(budget, data)]
    )
    fresh = command([*study_options(options, "NEW"), *_without_study(options.argv)])
    raise UsageError(
        f"study {options.study!r} was run with {', '.join(changed)}; one study holds one "
        f"budget. Resume it as stored: {resume}; or start a new study: {fresh}"
    )


def study_options(options: RunOptions, name: str | None = None) -> list[str]:
    """`--study NAME` (the run's, or `name`) and, when it was given on the command line,
    `--storage URL` (redacted: a storage from $VAE_SEARCH_STORAGE is found there again)."""
    parts = ["--study", name or options.study]
    if options.storage and options.storage != os.environ.get(storage_module.STORAGE_ENV):
        parts += ["--storage", storage_module.redact_url(options.storage)]
    return parts


def budget_options(budget: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """The options that give a run the stored budget and data: preset, epochs, training
    images, data (keras, bundled or the file), the unlabeled extra, a non-default seed, and
    the backend when a plain `run` here would not pick it."""
    parts = ["--preset", str(budget.get("preset"))]
    for key, flag in (("epochs", "--epochs"), ("subset", "--subset")):
        if budget.get(key) is not None:
            parts += [flag, str(budget[key])]
    source = data.get("source")
    parts += ["--data", str(source if source in LIBRARY_SOURCES else data.get("path"))]
    if budget.get("extra_unlabeled"):
        parts.append("--extra-unlabeled")
    if data.get("seed") not in (None, defaults.SEED):
        parts += ["--seed", str(data["seed"])]
    # Named when it is not TensorFlow, and when this process runs another one ($KERAS_BACKEND
    # or --backend): without it the command would be refused again for its backend.
    stored = str(budget.get("backend", defaults.BACKEND))
    if stored != defaults.BACKEND or stored != keras_backend.current():
        parts += ["--backend", stored]
    return parts


def command(run_options: list[str]) -> str:
    """`python -m search run OPTIONS`, quoted for a POSIX shell."""
    return "python -m search run " + shlex.join(run_options)


def _without_study(argv: list[str]) -> list[str]:
    """The command line's `run` options less `run` itself, `--study` and `--storage`."""
    kept: list[str] = []
    skip_next = False
    for arg in without_storage(argv)[1:] if argv[:1] == ["run"] else without_storage(argv):
        if skip_next:
            skip_next = False
        elif arg == "--study":
            skip_next = True
        elif not arg.startswith("--study="):
            kept.append(arg)
    return kept
