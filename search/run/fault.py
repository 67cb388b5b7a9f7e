"""A run stopped by a fault of the machine (a full disk, a storage that broke mid-run): its
trial ends FAIL with the reason where the storage still takes a write, and one `error:` line
says what happened to it and how to resume."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import defaults, records
from search.faults import EXIT_FAULT, fault_reason
from search.run import console
from search.run.budget import finished_count
from search.run.objective import Objective
from search.run.options import RunOptions

log = logging.getLogger("search.run")


class ResumeHint:
    """The command that resumes the study, said even when its storage stopped answering (a
    PostgreSQL server that went away): the study's records and finished-trial count are read
    when training starts, and `progress` counts the trials this process finished since.

    A `--workers` child gives none (None): its own command line, with the storage in its
    environment, would not resume the study; the parent says how (`workers_stopped`)."""

    def __init__(
        self,
        options: RunOptions,
        target_total: int | None,
        study: optuna.Study,
        progress: console.Progress | None = None,
    ) -> None:
        self.options, self.target_total, self.study = options, target_total, study
        self.progress = progress
        self.stored, self.finished = records.study_attrs(study), finished_count(study)
        self.extra = workers_options(options)
        self.uncounted = False  # the count in the command may miss trials finished since

    def __call__(self) -> str | None:
        if not self.options.is_parent:
            return None
        try:
            finished = finished_count(self.study)
        except Exception as err:
            if fault_reason(err) is None:
                raise
            finished = self.finished + (self.progress.finished if self.progress else 0)
            self.uncounted = self.progress is None  # other processes' trials are not known
        else:
            self.stored = records.study_attrs(self.study)
        return console.resume_from(
            self.options, self.target_total, self.stored, finished, self.extra
        )


def workers_options(options: RunOptions) -> list[str]:
    """The options that start the same worker processes again (none for a single process)."""
    if not options.is_parent:
        return []
    parts = []
    if options.workers_auto or options.workers is not None:
        parts += ["--workers", "auto" if options.workers_auto else str(options.workers)]
    if options.gpus is not None:
        parts += ["--gpus", ",".join(map(str, options.gpus))]
    if options.workers_per_gpu != defaults.WORKERS_PER_GPU:
        parts += ["--workers-per-gpu", str(options.workers_per_gpu)]
    return parts


def workers_stopped(resume: ResumeHint) -> None:
    """A `--workers` parent whose workers stopped by a fault: one line, how to resume (each
    worker said what failed in its own `[wI] error:` line)."""
    try:
        how = f"once that is fixed, resume with: {resume()}"
        if resume.uncounted and resume.target_total is not None:
            how += (
                ", its --trials lowered by the trials the workers finished in this run (the "
                "storage could not be read to count them)"
            )
    except Exception:  # the records cannot be read now
        how = "the storage could not be read to say how to resume"
    log.error("error: a worker stopped by a fault (its [wN] error: line says what); %s", how)


def stop_after_fault(
    study: optuna.Study,
    objective: Objective,
    fault: str,
    resume: Callable[[], str | None],
    storage_file: Path | None = None,
) -> int:
    """Fail the trial the fault stopped, say so in one line, return EXIT_FAULT."""
    if storage_file is not None and not storage_file.exists():
        objective.discard_artifacts()  # nothing refers to them any more
        log.error(
            "error: stopped by a fault: %s; the storage file %s was deleted while the run "
            "used it, and the study with it: restore a copy to resume it",
            fault,
            storage_file,
        )
        return EXIT_FAULT
    trial = objective.current_trial
    what = "no trial was training" if trial is None else _fail(study, objective, trial, fault)
    try:
        command = resume()
        how = (
            f"once that is fixed, resume with: {command}"
            if command is not None
            else "the --workers parent says how to resume"
        )
    except Exception:  # the storage cannot even be read now
        how = "the storage could not be read to say how to resume"
    log.error("error: stopped by a fault: %s; %s; %s", fault, what, how)
    return EXIT_FAULT


def _fail(study: optuna.Study, objective: Objective, trial: optuna.Trial, fault: str) -> str:
    """Mark `trial` FAIL with the reason if it is still RUNNING, its artifacts removed first
    (a full disk gets back what the trial took); what became of it. A trial that completed
    before the fault keeps its artifacts."""
    storage = study._storage
    try:
        state = storage.get_trial(trial._trial_id).state
    except Exception:
        state = None  # unknown: its artifacts are kept, in case it completed
    if state in (TrialState.RUNNING, TrialState.FAIL):
        objective.discard_artifacts()
    try:
        if state == TrialState.RUNNING:
            with contextlib.suppress(Exception):  # the state matters more than the reason
                records.write_failure(trial, f"stopped by a fault: {fault}")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            state = TrialState.FAIL
    except Exception:
        state = None
    if state is None:
        return (
            f"trial {trial.number} could not be marked FAIL (the storage takes no write); "
            "a later run fails it once its heartbeat is older than the grace period"
        )
    if state == TrialState.FAIL:
        return f"trial {trial.number} was marked FAIL"
    return f"trial {trial.number} had ended {state.name} before"
