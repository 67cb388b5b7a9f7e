"""The study: open storage, suggest a configuration, train it, store everything, repeat.

`run_study(options)` is what `python -m search run` does. The path of one trial:

    run_study -> study.optimize(objective) -> objective(trial)
        suggest_params (space.py) -> train_vae (training.py) with the pruner's epoch hook
        -> user attrs (docs/study-records.md) -> artifacts (outputs.py) -> (SSIM, MSE)

Optuna's storages do the bookkeeping: a second run resumes the same study, several workers
share it, heartbeats turn a dead worker's trial into a retried one (storage.py).
"""

from __future__ import annotations

import datetime
import gc
import logging
import math
import os
import platform
import shlex
import signal
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from search import configurations as configs
from search import space as search_space
from search import storage as storage_module
from search.errors import UsageError
from search.paths import check_output_folder, stored_artifacts_dir
from search.pruning import ParetoPrunerConfig, prune_reason

log = logging.getLogger(__name__)

DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
METRIC_NAMES = ["SSIM", "MSE"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SAMPLERS = ("tpe", "nsga2", "random")
KEEP_MODELS = ("pareto", "all", "none")
REPORT_FILES = ("report.html", "report.pdf")
VERSIONED_PACKAGES = (
    "vae-search",
    "tensorflow",
    "keras",
    "optuna",
    "numpy",
    "plotly",
    "weasyprint",
)


@dataclass
class RunOptions:
    """Everything `run` needs; the CLI fills it, tests may build it directly."""

    trials: int | None = None
    study: str = "mnist-vae"
    storage: str | None = None
    data: str = "auto"
    preset: str = "full"
    epochs: int | None = None
    subset: int | None = None
    seed: int = 0
    sampler: str = "tpe"
    pruning: bool = True
    # None: the preset's (chosen by bench/bench_pruning.py on recorded curves)
    eta: int | None = None
    grace_epochs: int | None = None
    noise_margin: float | None = None
    envelope: int | None = None
    timeout: float | None = None
    # None: one per GPU, or one on a CPU-only machine (1: this process alone); with
    # `workers_auto`, min(cores, trials to run) there instead (`choose_cpu_workers`).
    workers: int | None = None
    gpus: list[int] | None = None
    workers_per_gpu: int = 1
    report: bool = True
    keep_models: str = "pareto"
    sweep: list[str] = field(default_factory=list)
    repeats: int = 1
    confirm: int = 2  # seeds beyond the first that a front configuration needs (0: no confirming)
    space: list[str] = field(default_factory=list)
    predictor: bool = False
    extra_unlabeled: bool = False
    artifacts: str | None = None
    mixed_precision: bool = False
    deterministic: bool = False
    heartbeat_interval: int = storage_module.HEARTBEAT_INTERVAL_S
    grace_period: int | None = None
    # Set by the `--workers` parent for its children: stop when the study holds this many
    # finished trials, so N workers share one trial budget.
    target_total: int | None = None
    worker_index: int | None = None
    argv: list[str] = field(default_factory=list)
    # `--workers auto`; `validate` keeps it only without --gpus and without a GPU, where
    # `choose_cpu_workers` decides.
    workers_auto: bool = False


DEFAULT_TRIALS = 20
# Exit code of a run stopped because too many of its trials failed (0 success, 2 bad input,
# 128 + signal number when interrupted: 130 Ctrl-C, 143 SIGTERM).
EXIT_TRIALS_FAILED = 1
BUDGET_POLL_S = 2.0  # how often a worker waiting for the others' last trials looks again


def validate(options: RunOptions) -> None:
    """Refuse bad input before anything touches storage."""
    storage_module.validate_study_name(options.study)
    if not 0 <= options.seed <= search_space.SEED_MAX:
        raise UsageError(f"--seed must be a whole number 0..2^32-1, got {options.seed}")
    if options.trials is not None and options.trials < 1:
        raise UsageError(f"--trials must be a positive integer, got {options.trials}")
    if options.preset not in search_space.PRESETS:
        raise UsageError(
            f"unknown preset {options.preset!r}: use {', '.join(search_space.PRESETS)}"
        )
    if options.sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler {options.sampler!r}: use {', '.join(SAMPLERS)}")
    if options.keep_models not in KEEP_MODELS:
        raise UsageError(f"--keep-models must be one of {', '.join(KEEP_MODELS)}")
    for name, value in (
        ("--epochs", options.epochs),
        ("--subset", options.subset),
        ("--repeats", options.repeats),
        ("--eta", options.eta),
        ("--grace-epochs", options.grace_epochs),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value}")
    if options.eta is not None and options.eta < 2:
        raise UsageError(f"--eta must be at least 2, got {options.eta}")
    if options.noise_margin is not None and not 0 <= options.noise_margin < math.inf:
        raise UsageError(f"--noise-margin must be 0 or more, got {options.noise_margin}")
    if options.envelope is not None and options.envelope < 0:
        raise UsageError(f"--envelope must be 0 or more, got {options.envelope}")
    if options.timeout is not None and not (0 < options.timeout < math.inf):
        raise UsageError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    shareable = not options.storage or storage_module.is_shareable(options.storage)
    if not shareable and options.workers not in (None, 1):
        raise UsageError("--workers needs a storage other processes can open (not memory)")
    from search.workers import plan_workers

    # A worker's CUDA_VISIBLE_DEVICES shows it one device: only the parent judges --gpus.
    # Only an explicit --gpus (or several workers) goes through the worker launcher; a plain
    # single run uses whatever GPU TensorFlow sees first.
    if options.worker_index is None:
        auto = options.workers_auto and options.workers is None and options.gpus is None
        options.workers, devices = plan_workers(
            options.workers, options.gpus, options.workers_per_gpu
        )
        options.workers_auto = auto and not devices


# Measured on a 2-core CPU (bench/results/throughput.md): two quick-preset workers of one
# thread each finished 1.12x the trials per hour of one process once started, 1.02x end to
# end over 6 trials (each worker starts its own TensorFlow). Too little, on that loaded
# machine, to give up a study that its --seed repeats exactly (with several workers, which
# one samples what depends on timing): so this is `--workers auto`, not the default.
AUTO_WORKERS_WHY = (
    "worker processes with the cores split between them keep a CPU busier than one process "
    "(bench/results/throughput.md)"
)


def choose_cpu_workers(options: RunOptions, requested: int) -> str | None:
    """The `--workers auto` count on a machine without GPUs; returns the run log's line.

    min(CPU cores, trials to run), each worker with its share of the cores; one process when
    only one would run anyway, or when the study's storage is for one process: SQLite (its
    writers lock each other out, see bench/results/storage.md) or memory. Called before the
    storage is opened, so the default storage follows the choice (journal for several).
    Returns None when the count was given (or GPUs decide it).
    """
    if not options.workers_auto:
        return None
    from search.workers import cpu_cores

    cores = cpu_cores()
    sqlite_file = Path("studies") / f"{options.study}.db"
    single = None
    if cores < 2:
        single = "1 CPU core"
    elif requested < 2:
        single = "1 trial to run"
    elif options.storage and not storage_module.is_shareable(options.storage):
        single = "an in-memory storage is seen by this process only"
    elif options.storage and options.storage.strip().lower().startswith("sqlite"):
        single = "SQLite storage is for one process (use a journal:// or database URL)"
    elif not options.storage and sqlite_file.exists():
        single = f"the study lives in {sqlite_file}, which is for one process"
    if single:
        options.workers = 1
        return f"workers: 1 (auto: {single}; no GPU, {cores} CPU cores)"
    options.workers = min(cores, requested)
    return (
        f"workers: {options.workers} (auto: no GPU, {cores} CPU cores, {requested} trials to "
        f"run; {AUTO_WORKERS_WHY}; --workers 1 trains in one process)"
    )


def build_space(options: RunOptions) -> search_space.SearchSpace:
    space = search_space.default_space()
    for spec in options.space:
        space = search_space.parse_space_override(spec, space)
    return space


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # constant_liar keeps parallel workers from suggesting the same point twice
        return optuna.samplers.TPESampler(multivariate=True, seed=seed, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def pruner_config(options: RunOptions, max_epochs: int) -> ParetoPrunerConfig:
    """The pruning rule of this run: the options where given, else the preset's defaults."""
    preset = search_space.PRESETS[options.preset]
    return ParetoPrunerConfig(
        max_epochs=max_epochs,
        grace_epochs=options.grace_epochs or preset.grace_epochs,
        eta=options.eta or preset.eta,
        noise_margin=preset.noise_margin if options.noise_margin is None else options.noise_margin,
        envelope_min_complete=(
            preset.envelope_min_complete if options.envelope is None else options.envelope
        ),
    )


def training_config(options: RunOptions, seed: int) -> Any:
    from search.training import TrainConfig

    preset = search_space.PRESETS[options.preset]
    return TrainConfig(
        epochs=options.epochs or preset.epochs,
        batch_size=preset.batch_size,
        seed=seed,
        validation_subset=preset.validation_subset,
        train_eval_subset=preset.train_eval_subset,
        test_eval_subset=preset.test_eval_subset,
        mixed_precision=options.mixed_precision,
        deterministic=options.deterministic,
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def count_states(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def dominated_by_any(values: list[float], trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Is (ssim, mse) dominated by a completed trial: no worse in both and better in one?"""
    ssim, mse = values
    for other in trials:
        o_ssim, o_mse = other.values
        if o_ssim >= ssim and o_mse <= mse and (o_ssim > ssim or o_mse < mse):
            return True
    return False


def is_designed(trial: optuna.Trial) -> bool:
    """Was this trial enqueued (a sweep, a repeat, a confirmation run, anything a user enqueues)?

    Optuna marks every enqueued trial with the system attr `fixed_params`; a retry of a failed
    trial carries its original's system attrs, so it is designed exactly when the original was.
    Designed trials are experiments: they are never pruned.
    """
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return "fixed_params" in frozen.system_attrs


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Objective:
    """Train the configuration a trial suggests; store curve, metrics and artifacts."""

    def __init__(
        self,
        options: RunOptions,
        space: search_space.SearchSpace,
        data: Any,
        artifact_store: Any,
        target_total: int,
    ) -> None:
        self.options = options
        self.space = space
        self.data = data
        self.artifact_store = artifact_store
        self.target_total = target_total
        self.epochs = training_config(options, 0).epochs
        self.pruner = pruner_config(options, self.epochs) if options.pruning else None

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        try:
            return self._train_and_store(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM) during the trial")
            raise

    def _train_and_store(self, trial: optuna.Trial) -> tuple[float, float]:
        from search.outputs import write_trial_outputs
        from search.training import TrainingFailed, tf_errors_fail_trial, train_vae

        study = trial.study
        STOP.check()
        self._claim_budget(study, trial)
        params = search_space.suggest_params(trial, self.space)
        params["predictor"] = self.options.predictor
        designed = is_designed(trial)
        if designed:
            trial.set_user_attr("designed", True)
        seed = self.options.seed + trial.number
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker", _worker_name())
        trial.set_user_attr("epochs_planned", self.epochs)

        def on_epoch(record: dict[str, float]) -> str | None:
            STOP.check()
            if self.pruner is None:
                return None
            return prune_reason(
                study,
                trial,
                int(record["epoch"]),
                record["val_ssim"],
                record["val_mse"],
                config=self.pruner,
                judge=not designed,  # an experiment runs to its end; its values still count
            )

        try:
            result = train_vae(params, self.data, training_config(self.options, seed), on_epoch)
        except TrainingFailed as failure:
            trial.set_user_attr("curve", failure.curve)
            trial.set_user_attr("epochs_run", len(failure.curve))
            trial.set_user_attr("fail_reason", failure.reason)
            raise

        for key, value in result.summary().items():
            trial.set_user_attr(key, value)
        if result.stopped_reason:
            trial.set_user_attr("pruned_reason", result.stopped_reason)
            trial.set_user_attr("pruned_at_epoch", result.epochs_run)
            raise optuna.TrialPruned(result.stopped_reason)
        if not (math.isfinite(result.val_ssim) and math.isfinite(result.val_mse)):
            reason = "validation metrics are not finite"
            trial.set_user_attr("fail_reason", reason)
            raise TrainingFailed(reason, result.curve)

        values = [result.val_ssim, result.val_mse]
        keep_model = self.options.keep_models == "all" or (
            self.options.keep_models == "pareto"
            and not dominated_by_any(
                values, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            )
        )
        assert result.model is not None
        with (
            tempfile.TemporaryDirectory(prefix="vae-search-") as tmp,
            tf_errors_fail_trial(
                "writing the trial's outputs", lambda why: trial.set_user_attr("fail_reason", why)
            ),
        ):
            paths = write_trial_outputs(
                result.model, self.data, Path(tmp), keep_model=keep_model, seed=seed
            )
            ids = {
                name: optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
                )
                for name, path in paths.items()
            }
        trial.set_user_attr("artifacts", ids)
        return result.val_ssim, result.val_mse

    def _claim_budget(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """With several workers, only the first `target_total` trials may train.

        `_budget_left` already keeps workers from creating trials the budget has no room
        for; this covers two workers that passed that check at the same moment. Each checks
        before training: finished trials plus running trials with a smaller number. Trial
        numbers are unique and ordered, so exactly the budget trains, whatever the timing.
        While the budget is full only because of trials still running, wait: one of them may
        die and be retried, and then this trial is needed. Once it is full of finished
        trials, the surplus trial ends at once (FAIL, said why) and stops.
        """
        while True:
            STOP.check()
            trials = study.get_trials(deepcopy=False)
            finished = sum(1 for t in trials if t.state in FINISHED)
            running_ahead = sum(
                1 for t in trials if t.state == TrialState.RUNNING and t.number < trial.number
            )
            if finished + running_ahead < self.target_total:
                return
            if finished >= self.target_total or running_ahead == 0:
                break
            time.sleep(BUDGET_POLL_S)
        trial.set_user_attr("fail_reason", "surplus: the study already had its requested trials")
        study.stop()
        raise BudgetReached()


class BudgetReached(Exception):
    """A worker found the trial budget already used up by the others."""


class Progress:
    """One line per finished trial, a progress bar, and the stop rules: the trial budget, and
    `max_failures` failed trials in this run (then `too_many_failures` says why)."""

    def __init__(self, target_total: int, requested: int, max_failures: int) -> None:
        from tqdm import tqdm

        self.target_total = target_total
        self.max_failures = max_failures
        self.failures = 0
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
        attrs = trial.user_attrs
        if attrs.get("fail_reason", "").startswith("surplus"):
            return
        params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        if trial.state == TrialState.COMPLETE:
            outcome = f"SSIM {trial.values[0]:.4f}  MSE {trial.values[1]:.5f}"
        elif trial.state == TrialState.PRUNED:
            outcome = f"pruned: {attrs.get('pruned_reason', '')}"
        else:
            outcome = f"failed: {attrs.get('fail_reason', 'see the log')}"
            self.failures += 1
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        self.bar.write(
            f"trial {trial.number:>4}  {params}  {outcome}  "
            f"epochs {attrs.get('epochs_run', 0)}  {seconds:.1f}s"
        )
        self.bar.update(1)
        finished = sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED))
        if finished >= self.target_total:
            study.stop()
        elif self.failures >= self.max_failures:
            self.too_many_failures = (
                f"stopping: {self.failures} trials failed in this run (the limit is "
                f"{self.max_failures}); each failed trial's fail_reason says why "
                "(`python -m search studies`, the dashboard)"
            )
            study.stop()


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # Our progress lines replace Optuna's per-trial INFO lines and its failure tracebacks.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def sampler_seed(options: RunOptions, url: str) -> int:
    """Each process its own sampler seed, so workers sharing a study never suggest in lockstep.

    A `--workers` child adds its index. A process started by hand on another machine has no
    index: on a database server it mixes in host and pid (reproducibility across machines is
    not on offer there anyway); locally `--seed` alone keeps a single run reproducible.
    """
    # Samplers take numpy seeds (0..2^32-1): an offset added to a large --seed wraps around.
    wrap = search_space.SEED_MAX + 1
    if options.worker_index is not None:
        return (options.seed + options.worker_index) % wrap
    if url.split(":", 1)[0].split("+", 1)[0] in {"postgresql", "postgres", "mysql", "mariadb"}:
        return (options.seed + zlib.crc32(_worker_name().encode()) % 100_000) % wrap
    return options.seed


def open_run_storage(options: RunOptions) -> tuple[optuna.storages.BaseStorage, str]:
    """Open (never create a study in) the run's storage: a bad URL fails here, in seconds."""
    url = options.storage or storage_module.default_storage_url(
        options.study, parallel=(options.workers or 1) > 1
    )
    storage = storage_module.open_storage(
        url,
        heartbeat_interval=options.heartbeat_interval or None,
        grace_period=options.grace_period,
    )
    return storage, url


def create_or_load_study(
    storage: optuna.storages.BaseStorage, url: str, options: RunOptions
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage,
        study_name=options.study,
        directions=DIRECTIONS,
        sampler=make_sampler(options.sampler, sampler_seed(options, url)),
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != DIRECTIONS:
        raise UsageError(
            f"study {options.study!r} exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not (maximize SSIM, minimize MSE)"
        )
    return study


def run_study(options: RunOptions) -> int:
    """The `run` command. Returns the exit code."""
    from search.data import load_mnist

    validate(options)
    _configure_logging()
    space = build_space(options)
    sweeps = [search_space.parse_sweep(spec, space) for spec in options.sweep]
    enqueued = [
        cfg
        for name, values in sweeps
        for cfg in search_space.sweep_configurations(name, values, options.repeats, space)
    ]
    requested = options.trials or len(enqueued) or DEFAULT_TRIALS
    workers_line = choose_cpu_workers(options, requested)
    deadline = time.monotonic() + options.timeout if options.timeout else None

    # Order matters: every check that can fail (options above, output places, the data) runs
    # before storage is opened, so a refused run creates no file and changes no study.
    report_dir = Path("studies") / options.study
    default_artifacts = check_output_folder(
        options.artifacts or report_dir / "artifacts",
        "--artifacts" if options.artifacts else "the artifact folder",
    )
    if options.report and options.worker_index is None:
        check_output_folder(report_dir, "the report folder", files=REPORT_FILES)
    preset = search_space.PRESETS[options.preset]
    data = load_mnist(
        options.data,
        seed=options.seed,
        subset=options.subset if options.subset is not None else preset.subset,
        extra_unlabeled=options.extra_unlabeled,
    )
    storage, url = open_run_storage(options)
    check_same_budget(storage, options, data.provenance)
    study = create_or_load_study(storage, url, options)
    stored = study.user_attrs
    if "search_space_distributions" in stored and not options.space:
        # resume what was searched, whatever today's defaults are
        space = search_space.space_from_json(stored["search_space_distributions"])
    # Absolute, so that reading the study from another folder finds the artifacts there.
    artifacts_dir = (
        default_artifacts
        if options.artifacts or not stored.get("artifacts_dir")
        else stored_artifacts_dir(stored["artifacts_dir"], url)
    )
    store = storage_module.artifact_store(artifacts_dir)
    config = training_config(options, options.seed)
    is_parent = options.worker_index is None
    if is_parent:
        _record_study(study, options, space, data.provenance, config, url, artifacts_dir)
        for params, tag in enqueued:
            study.enqueue_trial({**params}, user_attrs={"sweep": tag}, skip_if_exists=False)

    already = sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED))
    target_total = options.target_total or already + requested
    pruner = pruner_config(options, config.epochs)
    log.info(
        "study %r in %s: %d finished trials, running %d more (%s preset: %d epochs, "
        "%d training images, batch %d; sampler %s; pruning %s; %s)",
        options.study,
        storage_module.redact_url(url),
        already,
        target_total - already,
        options.preset,
        config.epochs,
        len(data.train),
        config.batch_size,
        options.sampler,
        f"on for sampled trials, rungs at {pruner.rungs} epochs"
        + (f", noise margin {pruner.noise_margin:g} seed SD" if pruner.noise_margin else "")
        + (
            f", envelope guard after {pruner.envelope_min_complete} completed trials"
            if pruner.envelope_min_complete
            else ""
        )
        if options.pruning
        else "off",
        f"then front configurations confirmed to {1 + options.confirm} seeds"
        if options.confirm and is_parent
        else "no confirmation runs",
    )
    if data.provenance["bundled_subset"]:
        log.info("data: the bundled 5,000-image MNIST subset (%s)", data.provenance["counts"])
    if workers_line:
        log.info("%s", workers_line)

    if is_parent and ((options.workers or 1) > 1 or options.gpus):
        from search.workers import run_workers

        def launch_workers(total: int, finished: int) -> int:
            """Workers train until the study holds `total` finished trials."""
            worker_argv = [
                *_without_storage(options.argv),
                "--target-total",
                str(total),
                "--artifacts",
                str(artifacts_dir),
            ]
            # The URL reaches the workers through their environment, not their command line,
            # where any user of the machine could read its password (`ps`).
            count = options.workers
            if options.workers_auto and count:
                count = min(count, total - finished)
                if count < 2:
                    # One run left (a confirmation round of one): train it here, as a single
                    # process would, not in a worker that first spends seconds starting
                    # TensorFlow and loading the data. Auto is CPU-only: no GPU to hold.
                    return _optimize(study, options, space, data, store, total, finished, deadline)
            return run_workers(
                count,
                worker_argv,
                options.gpus,
                options.workers_per_gpu,
                extra_env={storage_module.STORAGE_ENV: url},
            )

        code = launch_workers(target_total, already)
        if code == 0:
            # The workers train the confirmation runs too: the parent only plans (it never
            # starts TensorFlow, which would take memory on every GPU and train on none).
            code = confirm_front(study, options, launch_workers, deadline)
        return _finish(study, options, url, code)
    code = _optimize(study, options, space, data, store, target_total, already, deadline)
    if not is_parent:
        return code  # the `--workers` parent prints the summary and writes the report

    def train_here(total: int, finished: int) -> int:
        return _optimize(study, options, space, data, store, total, finished, deadline)

    if code == 0:
        code = confirm_front(study, options, train_here, deadline)
    # Too many failed trials: the summary still shows what was measured, without a report.
    return _finish(study, options, url, code) if code in (0, EXIT_TRIALS_FAILED) else code


_frozen = False


def freeze_start_up_objects() -> None:
    """Exempt what start-up created (TensorFlow, Keras, Optuna, the data) from every later
    garbage collection, once per process.

    Those ~400,000 objects live as long as the process, yet every full collection walked
    them: Keras' clear_session() runs one per trial, and allocation-heavy steps (tracing,
    save_weights) trigger more. Each took ~0.3 s of a ~4 s quick-preset trial on this CPU
    (bench/results/throughput.md). Collected first, so no garbage is frozen; only once, so
    a later call cannot freeze a finished trial's model.
    """
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def _optimize(
    study: optuna.Study,
    options: RunOptions,
    space: search_space.SearchSpace,
    data: Any,
    store: Any,
    target_total: int,
    already: int,
    deadline: float | None = None,
) -> int:
    """This process trains trials until the study holds `target_total` finished ones.

    Returns the exit code; the caller confirms the front and prints the summary.
    """
    from search.training import TrainingFailed, configure_device

    log.info("device: %s", configure_device(options.mixed_precision, options.deterministic))
    freeze_start_up_objects()
    objective = Objective(options, space, data, store, target_total)
    progress = Progress(
        target_total, target_total - already, max_failures=max(3, target_total - already)
    )
    STOP.signum = None  # a signal handled by an earlier run in this process is not ours
    previous = {sig: signal.signal(sig, STOP) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # One trial per optimize() call, so the budget is checked before a trial is created:
        # a trial created once the budget is full could only end as a failure.
        while progress.too_many_failures is None and _budget_left(study, target_total):
            if deadline is not None and time.monotonic() >= deadline:
                break
            study.optimize(
                objective,
                n_trials=1,
                callbacks=[progress],
                catch=(TrainingFailed, BudgetReached),
            )
        STOP.check()  # a signal swallowed at the very end still means "interrupted"
    except KeyboardInterrupt:
        progress.bar.close()
        log.info(
            "interrupted: the running trial was marked FAIL; resume with: %s",
            _resume_command(options, target_total, study),
        )
        return 128 + (STOP.signum or signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        progress.bar.close()
    if progress.too_many_failures:
        log.error("error: %s", progress.too_many_failures)
        return EXIT_TRIALS_FAILED
    return 0


def _budget_left(study: optuna.Study, target_total: int) -> bool:
    """Is another trial needed? Waits while only still-running trials could fill the budget.

    Running trials may belong to other workers: when they finish, the budget is full; when
    their worker dies, heartbeats fail them and queue a retry, which this worker may run.
    """
    while True:
        STOP.check()
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        if finished >= target_total:
            return False
        if finished + running < target_total:
            return True
        optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
        time.sleep(BUDGET_POLL_S)


MAXIMIZE = [direction == "maximize" for direction in DIRECTIONS]
# Confirming can change the front (a configuration's mean moves), so the plan is made again
# after each round; a few rounds settle it, and a bound keeps a noisy front from running on.
CONFIRM_ROUNDS = 3


def completed_configurations(study: optuna.Study) -> list[configs.Configuration]:
    """The study's completed trials grouped into configurations (equal parameters)."""
    runs = [
        configs.Run(t.number, t.params, tuple(t.values))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]
    return configs.group_runs(runs)


def confirm_front(
    study: optuna.Study,
    options: RunOptions,
    train: Callable[[int, int], int],
    deadline: float | None = None,
) -> int:
    """Train front configurations again under new seeds until each has `1 + confirm` runs.

    A confirmation run is a designed trial tagged `confirms: <the configuration's first trial>`;
    its seed is new (`--seed` + its trial number) and its budget the study's. The plan
    (configurations.confirmation_plan: at most 5, nearest the knee first) is made again after
    each round, since new means can move the front. `train(total, finished)` trains the
    enqueued runs until the study holds `total` finished trials (here, or in workers) and
    returns an exit code; so does this function.
    """
    if options.confirm < 1:
        return 0
    planned: dict[int, configs.Configuration] = {}
    for _ in range(CONFIRM_ROUNDS):
        plan = configs.confirmation_plan(completed_configurations(study), MAXIMIZE, options.confirm)
        trials = study.get_trials(deepcopy=False)
        # Runs already asked for (a run interrupted earlier, another machine at work) count.
        pending: dict[int, int] = {}
        for t in trials:
            if t.state in (TrialState.WAITING, TrialState.RUNNING) and "confirms" in t.user_attrs:
                pending[t.user_attrs["confirms"]] = pending.get(t.user_attrs["confirms"], 0) + 1
        needed = [(c, k - pending.get(c.first, 0)) for c, k in plan]
        needed = [(c, k) for c, k in needed if k > 0]
        waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
        if not needed and not waiting:
            break
        if deadline is not None and deadline <= time.monotonic():
            log.info("confirmation: skipped, --timeout reached; a later run confirms the front")
            break
        for configuration, runs in needed:
            planned[configuration.first] = configuration
            log.info(
                "confirmation: trial %d's configuration (%s) has %d run(s): %d more under new "
                "seeds",
                configuration.first,
                _describe(configuration.params),
                configuration.n,
                runs,
            )
            for _ in range(runs):
                study.enqueue_trial(
                    dict(configuration.params),
                    user_attrs={"confirms": configuration.first, "designed": True},
                    skip_if_exists=False,
                )
        finished = sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED))
        to_train = waiting + sum(k for _, k in needed)
        code = train(finished + to_train, finished)
        if code != 0:
            return code
    if not planned:
        log.info(
            "confirmation: every front configuration considered (up to %d) has %d or more seeds",
            configs.MAX_CONFIRMED,
            1 + options.confirm,
        )
    _log_confirmed(study, planned)
    return 0


def _log_confirmed(study: optuna.Study, planned: dict[int, configs.Configuration]) -> None:
    """Say in the run log what was confirmed: each configuration's mean, SD and n now."""
    now = {c.first: c for c in completed_configurations(study)}
    for first in sorted(planned):
        configuration = now.get(first)
        if configuration is None:
            continue
        sd = configuration.sd or (math.nan, math.nan)
        log.info(
            "confirmed: trial %d's configuration over %d seeds: SSIM %.4f (SD %.4f), "
            "MSE %.5f (SD %.5f)",
            first,
            configuration.n,
            configuration.mean[0],
            sd[0],
            configuration.mean[1],
            sd[1],
        )


def _describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def check_same_budget(
    storage: optuna.storages.BaseStorage,
    options: RunOptions,
    provenance: dict[str, Any],
) -> None:
    """Refuse to resume a study under another budget; reads storage, writes nothing.

    Rungs, fronts and means only compare trials trained alike: the same preset, epochs,
    training images, data and unlabeled extra. A study holds one budget.
    """
    try:
        study_id = storage.get_study_id_from_name(options.study)
    except KeyError:
        return  # a new study
    stored = storage.get_study_user_attrs(study_id)
    budget, data = stored.get("budget"), stored.get("data")
    if not isinstance(budget, dict) or not isinstance(data, dict):
        return  # not written by vae-search's run (or before budgets were recorded)
    now = study_budget(options, provenance)
    names = {
        "preset": "--preset",
        "epochs": "--epochs",
        "subset": "--subset (training images)",
        "extra_unlabeled": "--extra-unlabeled",
    }
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


def study_budget(options: RunOptions, provenance: dict[str, Any]) -> dict[str, Any]:
    """What one trial's training costs and sees: stored once, checked on every resume.

    Read from the preset, not from a TrainConfig: the check runs before TensorFlow is imported.
    """
    preset = search_space.PRESETS[options.preset]
    counts = provenance["counts"]
    return {
        "preset": options.preset,
        "epochs": options.epochs or preset.epochs,
        "subset": counts["train"] - counts.get("unlabeled", 0),
        "extra_unlabeled": options.extra_unlabeled,
        "batch_size": preset.batch_size,
        "validation_subset": preset.validation_subset,
    }


class StopRequest:
    """SIGINT/SIGTERM handler that is not lost.

    Raising KeyboardInterrupt from a signal handler is not enough on its own: when the signal
    lands while Python runs a weakref or __del__ callback (TensorFlow triggers many), the
    exception is printed as "ignored" and training goes on. So the handler also remembers the
    signal, and the objective checks it at every epoch end and before every trial.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {self.signum}")


STOP = StopRequest()


def _without_storage(argv: list[str]) -> list[str]:
    """`argv` less its `--storage URL` / `--storage=URL`."""
    kept: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--storage":
            skip_next = True
        elif not arg.startswith("--storage="):
            kept.append(arg)
    return kept


def _resume_command(options: RunOptions, target_total: int, study: optuna.Study) -> str:
    left = target_total - sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED))
    parts = ["--study", options.study, "--trials", str(max(left, 1))]
    # A storage taken from $VAE_SEARCH_STORAGE is found there again; a redacted URL would not
    # work as a command-line argument anyway.
    if options.storage and options.storage != os.environ.get(storage_module.STORAGE_ENV):
        parts += ["--storage", storage_module.redact_url(options.storage)]
    return "python -m search run " + " ".join(shlex.quote(p) for p in parts)


def _record_study(
    study: optuna.Study,
    options: RunOptions,
    space: search_space.SearchSpace,
    provenance: dict[str, Any],
    config: Any,
    url: str,
    artifacts_dir: Path,
) -> None:
    stored = study.user_attrs
    study.set_metric_names(METRIC_NAMES)
    if "created_by" not in stored:
        study.set_user_attr("created_by", "vae-search")
        study.set_user_attr("search_space", search_space.describe_space(space))
        study.set_user_attr("search_space_distributions", search_space.space_to_json(space))
        study.set_user_attr("fixed_params", {"predictor": options.predictor})
        study.set_user_attr("data", provenance)
        study.set_user_attr("sampler", options.sampler)
        study.set_user_attr("seed", options.seed)
        study.set_user_attr("artifacts_dir", str(artifacts_dir))
    study.set_user_attr("budget", study_budget(options, provenance))
    pruner = pruner_config(options, config.epochs)
    study.set_user_attr(
        "pruning",
        {
            "enabled": options.pruning,
            "grace_epochs": pruner.grace_epochs,
            "eta": pruner.eta,
            "rungs": pruner.rungs,
            "noise_margin_sd": pruner.noise_margin,
            "envelope_min_complete": pruner.envelope_min_complete,
        },
    )
    runs = list(stored.get("runs", []))
    runs.append(
        {
            "command": "python -m search "
            + " ".join(shlex.quote(a) for a in storage_module.redact_argv(options.argv)),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "device": _run_device(options),
            "versions": versions(),
            "storage": storage_module.redact_url(url),
        }
    )
    study.set_user_attr("runs", runs)


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
            f"{sd[1]:>8}  {_describe(c.params)}"
        )
    choice = configs.choose(front, MAXIMIZE, configurations)
    if choice is None:
        return
    chosen = choice.configuration
    print(
        f"recommended: trial {chosen.first}'s configuration ({_describe(chosen.params)}), "
        f"SSIM {chosen.mean[0]:.4f}, MSE {chosen.mean[1]:.5f}, mean over {chosen.n} "
        f"seed{'s' if chosen.n != 1 else ''}; {choice.method}"
    )


def _run_device(options: RunOptions) -> str:
    """The device(s) this run trains on, for the study's record of its runs.

    A `--workers`/`--gpus` parent only launches: it describes the placement from nvidia-smi
    and never imports TensorFlow (a CUDA context would take memory on every GPU, unused).
    """
    if options.workers == 1 and options.gpus is None:
        from search.training import configure_device

        return configure_device(options.mixed_precision, options.deterministic)
    from search.workers import describe_placement, plan_workers

    return describe_placement(*plan_workers(options.workers, options.gpus, options.workers_per_gpu))


def _finish(study: optuna.Study, options: RunOptions, url: str, code: int) -> int:
    """Print the Pareto front of configurations, the recommendation, and write the report."""
    counts = count_states(study)
    print(
        f"\nstudy {options.study!r}: "
        + ", ".join(f"{n.lower()} {c}" for n, c in counts.items() if c)
    )
    print_front(completed_configurations(study))
    if options.report and code == 0:
        from search.report import write_report

        out_dir = Path("studies") / options.study
        paths = write_report(
            study,
            out_dir,
            formats=("html", "pdf"),
            artifact_store_dir=Path(study.user_attrs.get("artifacts_dir", out_dir / "artifacts")),
        )
        for fmt, path in paths.items():
            print(f"report ({fmt}): {path}")
    elif code == 0:
        from search.dashboard_story import write_story_without_report

        write_story_without_report(study, Path(study.user_attrs.get("artifacts_dir", ".")))
    return code
