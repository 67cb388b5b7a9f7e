"""`python -m search run`, top to bottom: check, load the data, open the study, train trials
(here or in worker processes), confirm the front, print the summary.

The path of one trial: run_study -> train_trials -> study.optimize(Objective) -> objective.py
(suggest, train_vae with the pruner's epoch hook, store) -> storage. Writing the report is
the CLI's job once this returns (search/commands.py), so the core never imports the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search import defaults, records
from search import space as search_space
from search import storage as storage_module
from search.convergence import as_record, sentence
from search.faults import EXIT_FAULT, fault_reason
from search.paths import check_output_folder, own_artifacts_dir, stored_artifacts_dir
from search.run import budget, console, eta, provenance, setup, space_check, total
from search.run.confirmation import (
    completed_configurations,
    confirm_front,
    converged_now,
    study_convergence,
)
from search.run.fault import ResumeHint, stop_after_fault, workers_stopped
from search.run.objective import Objective
from search.run.options import RunOptions, validate
from search.run.process import freeze_start_up_objects, without_storage
from search.stopping import STOP, exit_code_of_stop, stopping_on_signals

log = logging.getLogger("search.run")

# Exit code of a run stopped because too many of its trials failed (0 success, 2 bad input,
# 3 a fault such as a full disk (search/faults.py), 128 + signal number when interrupted:
# 130 Ctrl-C, 143 SIGTERM).
EXIT_TRIALS_FAILED = 1
REPORT_FILES = ("report.html", "report.pdf")


def report_dir(options: RunOptions) -> Path:
    """Where `run` writes the study's report: studies/<study>/."""
    return Path(defaults.STUDIES_DIR) / options.study


@dataclass
class RunOutcome:
    """How a run ended: its exit code, and the study it worked on (for the report)."""

    code: int
    study: optuna.Study | None = None

    @property
    def wants_report(self) -> bool:
        """Did a planning process finish its trials (a report of them makes sense)?"""
        return self.code == 0 and self.study is not None


def run_study(options: RunOptions) -> int:
    """The `run` command, less its report: the exit code."""
    return run(options).code


def run(options: RunOptions) -> RunOutcome:
    """The `run` command, less its report (search/commands.py writes that)."""
    from search.data import load_mnist

    validate(options)
    setup.plan_placement(options)
    console.configure_logging()
    space = setup.build_space(options)
    sweeps = [search_space.parse_sweep(spec, space) for spec in options.sweep]
    enqueued = [
        cfg
        for name, values in sweeps
        for cfg in search_space.sweep_configurations(name, values, options.repeats, space)
    ]
    # With --total-trials and no --trials the study's count decides; this only sizes workers.
    requested = options.trials or len(enqueued) or options.total_trials or defaults.TRIALS
    workers_line = setup.choose_cpu_workers(options, requested)
    deadline = time.monotonic() + options.timeout if options.timeout else None

    # Order matters: every check that can fail (options above, output places, the data) runs
    # before storage is opened, so a refused run creates no file and changes no study.
    default_artifacts = check_output_folder(
        options.artifacts or report_dir(options) / "artifacts",
        "--artifacts" if options.artifacts else "the artifact folder",
    )
    if options.report and options.is_parent:
        check_output_folder(report_dir(options), "the report folder", files=REPORT_FILES)
    # A study that exists (or a server) is opened now, so a resume under another budget is
    # refused before any data is loaded or downloaded; a new file is created only below.
    storage = None
    file = storage_module.storage_file(setup.storage_url(options))
    if file is None or file.exists():
        storage, url = setup.open_run_storage(options)
        budget.check_budget_before_data(storage, options)
        space_check.check_same_space(storage, options, space)
    preset = defaults.PRESETS[options.preset]
    data = load_mnist(
        options.data,
        seed=options.seed,
        subset=options.subset if options.subset is not None else preset.subset,
        extra_unlabeled=options.extra_unlabeled,
    )
    if storage is None:
        storage, url = setup.open_run_storage(options)
    budget.check_same_budget(storage, options, data.provenance)
    study = setup.create_or_load_study(storage, url, options)
    stored = records.study_attrs(study)
    distributions = records.read_distributions(stored)
    if distributions is not None and not options.space:
        # resume what was searched, whatever today's defaults are
        space = search_space.space_from_json(distributions)
    # Absolute, so that reading the study from another folder finds the artifacts there.
    stored_dir = records.read_artifacts_dir(stored)
    artifacts_dir = (
        default_artifacts
        if options.artifacts or stored_dir is None
        else stored_artifacts_dir(stored_dir, url)
    )
    if artifacts_dir != default_artifacts and not own_artifacts_dir(artifacts_dir, url):
        artifacts_dir = default_artifacts  # a stored `/` is never written into
    store = storage_module.artifact_store(artifacts_dir)
    epochs = setup.epochs(options)
    if options.is_parent:
        provenance.record_study(study, options, space, data.provenance, epochs, url, artifacts_dir)
        if options.total_trials:  # every worker may name the sweep: it runs once
            enqueued = total.sweep_points_to_enqueue(study, enqueued)
        for params, point in enqueued:
            study.enqueue_trial(
                {**params}, user_attrs=records.sweep_tag(point), skip_if_exists=False
            )

    already = budget.finished_count(study)
    target_total = run_cap(options, already, requested)
    console.log_plan(
        options,
        url,
        already,
        planned_total(study, options, target_total),
        len(data.train),
        epochs,
        preset.batch_size,
        setup.pruner_config(options, epochs),
    )
    if options.total_trials:
        log.info("%s", total.plan_line(study, options.total_trials))
    if data.provenance["bundled_subset"]:
        log.info("data: the bundled 5,000-image MNIST subset (%s)", data.provenance["counts"])
    if workers_line:
        log.info("%s", workers_line)

    def train_here(cap: int | None, finished: int) -> int:
        return train_trials(study, options, space, data, store, cap, finished, deadline)

    if setup.uses_workers(options):
        resume = ResumeHint(options, target_total, study)  # read while the storage answers

        def train(cap: int | None, finished: int) -> int:
            return _launch_workers(options, url, artifacts_dir, cap, finished, train_here)

    else:
        train = train_here
    try:
        code = train(target_total, already)
        if not options.is_parent:
            return RunOutcome(code)  # the `--workers` parent confirms and sums up
        if code in (0, EXIT_TRIALS_FAILED):
            settled = study_convergence(study, options)
            log.info("%s", sentence(settled))
            records.write_convergence(study, as_record(settled))
        if code == 0:
            # With workers, they train the confirmation runs too: the parent only plans (it never
            # starts TensorFlow, which would take memory on every GPU and train on none).
            code = confirm_front(study, options, train, deadline)
        # Too many failed trials: the summary still shows what was measured. A `--workers`
        # parent sums up after an interruption too: it never trained, so nothing is half done.
        if code in (0, EXIT_TRIALS_FAILED) or setup.uses_workers(options):
            try:
                console.print_summary(study, options, completed_configurations(study))
            except Exception as error:
                if code != EXIT_FAULT or fault_reason(error) is None:
                    raise  # a worker's fault (a server gone) leaves no summary to print
        if code == EXIT_FAULT and setup.uses_workers(options):
            workers_stopped(resume)
        return RunOutcome(code, study)
    except KeyboardInterrupt:
        # Between trials (after the trial loop, before or after the confirmation round)
        log.info(
            "interrupted: no trial was running; resume with: %s",
            console.resume_command(options, target_total, study),
        )
        return RunOutcome(exit_code_of_stop())


def run_cap(options: RunOptions, already: int, requested: int) -> int | None:
    """The finished trials (of any kind) at which this run stops; None: --total-trials alone
    decides (then designed trials and the study's sampled count stop it, search/run/total.py).

    --trials N stops a run once the study holds N more finished trials than at its start, as
    ever; with --total-trials too, whichever comes first.
    """
    if options.total_trials and options.trials is None and options.target_total is None:
        return None
    return options.target_total or already + requested


def planned_total(study: optuna.Study, options: RunOptions, cap: int | None) -> int:
    """The finished trials the study will hold when this run ends, as far as is known now."""
    finished = budget.finished_count(study)
    if not options.total_trials:
        assert cap is not None
        return cap
    left = total.trials_left(study, options.total_trials)
    return finished + left if cap is None else min(cap, finished + left)


def _launch_workers(
    options: RunOptions,
    url: str,
    artifacts_dir: Path,
    cap: int | None,
    finished: int,
    train_here: Any,
) -> int:
    """Worker processes train until the study holds `cap` finished trials (None: until the
    --total-trials budget is used up; each worker reads it from its command line)."""
    from search.workers import run_workers

    worker_argv = [
        *without_storage(options.argv),
        *(["--target-total", str(cap)] if cap is not None else []),
        "--artifacts",
        str(artifacts_dir),
    ]
    count = options.workers
    if options.workers_auto and count and cap is not None:
        count = min(count, cap - finished)
        if count < 2:
            # One run left (a confirmation round of one): train it here, as a single process
            # would, not in a worker that first spends seconds starting TensorFlow and loading
            # the data. Auto is CPU-only: no GPU to hold.
            return int(train_here(total, finished))
    # The URL reaches the workers through their environment, not their command line, where
    # any user of the machine could read its password (`ps`).
    return run_workers(
        count,
        worker_argv,
        options.gpus,
        options.workers_per_gpu,
        extra_env={storage_module.STORAGE_ENV: url},
    )


def train_trials(
    study: optuna.Study,
    options: RunOptions,
    space: search_space.SearchSpace,
    data: Any,
    store: Any,
    target_total: int | None,
    already: int,
    deadline: float | None = None,
) -> int:
    """This process trains trials until the study holds `target_total` finished ones, and
    with --total-trials until the study's sampled budget is used up (whichever comes first).

    Returns the exit code; the caller confirms the front and prints the summary.
    """
    from search.training import configure_device

    device = configure_device(options.mixed_precision, options.deterministic)
    log.info("device: %s", device)
    objective = Objective(options, space, data, store, target_total)
    planned = planned_total(study, options, target_total) - already
    if options.preset == "full" and device.startswith("CPU") and options.worker_index in (None, 0):
        # Said once, before the first trial, not asked: the run keeps the preset it was given.
        line = eta.cpu_full_preset_warning(data, objective.epochs, max(planned, 1))
        if line:
            log.info("%s", line)
    freeze_start_up_objects()

    def left(study: optuna.Study) -> int:
        return max(planned_total(study, options, target_total) - budget.finished_count(study), 0)

    progress = console.Progress(
        target_total, planned, max_failures=max(3, planned), left=left, device=device
    )
    resume = ResumeHint(options, target_total, study, progress)
    with stopping_on_signals():
        return _train_until_done(study, options, objective, progress, resume, deadline)


def _train_until_done(
    study: optuna.Study,
    options: RunOptions,
    objective: Objective,
    progress: console.Progress,
    resume: ResumeHint,
    deadline: float | None,
) -> int:
    """One trial at a time until the budget is met; a stop signal or a machine fault ends it
    with one line and the command that resumes."""
    from search.training import TrainingFailed

    target_total = resume.target_total
    try:
        STOP.check()  # a signal during start-up: no trial is started
        # One trial per optimize() call, so the budget is checked before a trial is created:
        # a trial created once the budget is full could only end as a failure.
        while progress.too_many_failures is None and _more_needed(study, options, target_total):
            if deadline is not None and time.monotonic() >= deadline:
                break
            study.optimize(
                objective,
                n_trials=1,
                callbacks=[progress],
                catch=(TrainingFailed, budget.BudgetReached),
            )
            if converged_now(study, options) is not None:
                log.info("--until-converged: the front stopped moving; no more trials sampled")
                break
        STOP.check()  # a signal swallowed at the very end still means "interrupted"
    except KeyboardInterrupt:
        progress.bar.close()
        log.info(
            "interrupted: %s; resume with: %s",
            console.what_was_interrupted(study, objective.interrupted_trial),
            console.resume_command(options, target_total, study),
        )
        return exit_code_of_stop()
    except Exception as error:
        fault = fault_reason(error)
        if fault is None:
            raise  # a bug: loud
        progress.bar.close()
        return stop_after_fault(
            study,
            objective,
            fault,
            resume,
            storage_module.storage_file(setup.storage_url(options)),
        )
    finally:
        progress.bar.close()
    if progress.too_many_failures:
        log.error("error: %s", progress.too_many_failures)
        return EXIT_TRIALS_FAILED
    return 0


def _more_needed(study: optuna.Study, options: RunOptions, cap: int | None) -> bool:
    """Another trial to train: under this run's cap, and the study-wide --total-trials."""
    if cap is not None and not budget.budget_left(study, cap):
        return False
    return not options.total_trials or total.sampling_left(study, options.total_trials)
