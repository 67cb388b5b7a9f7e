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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from search import space as search_space
from search import storage as storage_module
from search.errors import UsageError
from search.pruning import ParetoPrunerConfig, prune_reason

log = logging.getLogger(__name__)

DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
METRIC_NAMES = ["SSIM", "MSE"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SAMPLERS = ("tpe", "nsga2", "random")
KEEP_MODELS = ("pareto", "all", "none")
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
    eta: int = 3
    grace_epochs: int = 2  # bench/results/search.md: epoch-1 rankings barely predict epoch 6
    timeout: float | None = None
    workers: int | None = None  # None: one per GPU, or one on a CPU-only machine
    gpus: list[int] | None = None
    report: bool = True
    keep_models: str = "pareto"
    sweep: list[str] = field(default_factory=list)
    repeats: int = 1
    space: list[str] = field(default_factory=list)
    predictor: bool = False
    extra_unlabeled: bool = False
    artifacts: str | None = None
    mixed_precision: bool = False
    heartbeat_interval: int = storage_module.HEARTBEAT_INTERVAL_S
    grace_period: int | None = None
    # Set by the `--workers` parent for its children: stop when the study holds this many
    # finished trials, so N workers share one trial budget.
    target_total: int | None = None
    worker_index: int | None = None
    argv: list[str] = field(default_factory=list)


DEFAULT_TRIALS = 20
# Exit code of a run stopped because too many of its trials failed (0 success, 2 bad input,
# 128 + signal number when interrupted: 130 Ctrl-C, 143 SIGTERM).
EXIT_TRIALS_FAILED = 1
BUDGET_POLL_S = 2.0  # how often a worker waiting for the others' last trials looks again


def validate(options: RunOptions) -> None:
    """Refuse bad input before anything touches storage."""
    storage_module.validate_study_name(options.study)
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
    if options.eta < 2:
        raise UsageError(f"--eta must be at least 2, got {options.eta}")
    if options.timeout is not None and not options.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    shareable = not options.storage or storage_module.is_shareable(options.storage)
    if not shareable and options.workers not in (None, 1):
        raise UsageError("--workers needs a storage other processes can open (not memory)")
    from search.workers import plan_workers

    requested_gpus = options.gpus
    options.workers, chosen = plan_workers(options.workers, options.gpus)
    # Only an explicit --gpus (or several workers) goes through the worker launcher; a plain
    # single run uses whatever GPU TensorFlow sees first.
    options.gpus = chosen if requested_gpus is not None or options.workers > 1 else None


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


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return (
        sorted(study.best_trials, key=lambda t: t.values[1])
        if count_states(study)["COMPLETE"]
        else []
    )


def dominated_by_any(values: list[float], trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Is (ssim, mse) dominated by a completed trial: no worse in both and better in one?"""
    ssim, mse = values
    for other in trials:
        o_ssim, o_mse = other.values
        if o_ssim >= ssim and o_mse <= mse and (o_ssim > ssim or o_mse < mse):
            return True
    return False


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
        self.pruner = (
            ParetoPrunerConfig(
                max_epochs=self.epochs, grace_epochs=options.grace_epochs, eta=options.eta
            )
            if options.pruning
            else None
        )

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        try:
            return self._train_and_store(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM) during the trial")
            raise

    def _train_and_store(self, trial: optuna.Trial) -> tuple[float, float]:
        from search.outputs import write_trial_outputs
        from search.training import TrainingFailed, train_vae

        study = trial.study
        STOP.check()
        self._claim_budget(study, trial)
        params = search_space.suggest_params(trial, self.space)
        params["predictor"] = self.options.predictor
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
        with tempfile.TemporaryDirectory(prefix="vae-search-") as tmp:
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
    if options.worker_index is not None:
        return options.seed + options.worker_index
    if url.split(":", 1)[0].split("+", 1)[0] in {"postgresql", "postgres", "mysql", "mariadb"}:
        return options.seed + zlib.crc32(_worker_name().encode()) % 100_000
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

    # Order matters: every check that can fail runs before the study is created or changed.
    storage, url = open_run_storage(options)
    preset = search_space.PRESETS[options.preset]
    data = load_mnist(
        options.data,
        seed=options.seed,
        subset=options.subset if options.subset is not None else preset.subset,
        extra_unlabeled=options.extra_unlabeled,
    )
    study = create_or_load_study(storage, url, options)
    stored = study.user_attrs
    if "search_space_distributions" in stored and not options.space:
        # resume what was searched, whatever today's defaults are
        space = search_space.space_from_json(stored["search_space_distributions"])
    artifacts_dir = Path(
        options.artifacts
        or stored.get("artifacts_dir")
        or Path("studies") / options.study / "artifacts"
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
    rungs = ParetoPrunerConfig(config.epochs, options.grace_epochs, options.eta).rungs
    log.info(
        "study %r in %s: %d finished trials, running %d more (%s preset: %d epochs, "
        "%d training images, batch %d; sampler %s; pruning %s)",
        options.study,
        storage_module.redact_url(url),
        already,
        target_total - already,
        options.preset,
        config.epochs,
        len(data.train),
        config.batch_size,
        options.sampler,
        f"on, rungs at {rungs} epochs" if options.pruning else "off",
    )
    if data.provenance["bundled_subset"]:
        log.info("data: the bundled 5,000-image MNIST subset (%s)", data.provenance["counts"])

    if is_parent and ((options.workers or 1) > 1 or options.gpus):
        from search.workers import run_workers

        worker_argv = [
            *_without_storage(options.argv),
            "--target-total",
            str(target_total),
            "--artifacts",
            str(artifacts_dir),
        ]
        # The URL reaches the workers through their environment, not their command line,
        # where any user of the machine could read its password (`ps`).
        code = run_workers(
            options.workers or 1,
            worker_argv,
            options.gpus or None,
            extra_env={storage_module.STORAGE_ENV: url},
        )
        return _finish(study, options, url, code)
    return _optimize(study, options, space, data, store, target_total, already, url)


def _optimize(
    study: optuna.Study,
    options: RunOptions,
    space: search_space.SearchSpace,
    data: Any,
    store: Any,
    target_total: int,
    already: int,
    url: str,
) -> int:
    """This process trains trials until the study holds `target_total` finished ones."""
    from search.training import TrainingFailed, configure_device

    log.info("device: %s", configure_device(options.mixed_precision))
    objective = Objective(options, space, data, store, target_total)
    progress = Progress(
        target_total, target_total - already, max_failures=max(3, target_total - already)
    )
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
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
    code = 0
    if progress.too_many_failures:
        log.error("error: %s", progress.too_many_failures)
        code = EXIT_TRIALS_FAILED
    if options.worker_index is not None:
        return code  # the `--workers` parent prints the summary and writes the report
    return _finish(study, options, url, code)


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
    from search.training import configure_device

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
    study.set_user_attr(
        "budget",
        {
            "preset": options.preset,
            "epochs": config.epochs,
            "subset": provenance["counts"]["train"],
            "batch_size": config.batch_size,
            "validation_subset": config.validation_subset,
        },
    )
    rungs = ParetoPrunerConfig(config.epochs, options.grace_epochs, options.eta).rungs
    study.set_user_attr(
        "pruning",
        {
            "enabled": options.pruning,
            "grace_epochs": options.grace_epochs,
            "eta": options.eta,
            "rungs": rungs,
        },
    )
    runs = list(stored.get("runs", []))
    runs.append(
        {
            "command": "python -m search "
            + " ".join(shlex.quote(a) for a in storage_module.redact_argv(options.argv)),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "device": configure_device(options.mixed_precision)
            if options.workers == 1
            else f"{options.workers} workers",
            "versions": versions(),
            "storage": storage_module.redact_url(url),
        }
    )
    study.set_user_attr("runs", runs)


def _finish(study: optuna.Study, options: RunOptions, url: str, code: int) -> int:
    """Print the Pareto front and write the report."""
    counts = count_states(study)
    print(
        f"\nstudy {options.study!r}: "
        + ", ".join(f"{n.lower()} {c}" for n, c in counts.items() if c)
    )
    front = pareto_trials(study)
    if front:
        print("Pareto front (validation):")
        print(f"  {'trial':>5}  {'SSIM':>7}  {'MSE':>8}  params")
        for t in front:
            params = " ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
            print(f"  {t.number:>5}  {t.values[0]:7.4f}  {t.values[1]:8.5f}  {params}")
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
    return code
