"""Set-up of a run: where its workers go, its search space, sampler, pruning rule, training
configuration, and the storage and study it opens."""

from __future__ import annotations

import os
import socket
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import optuna

from search import defaults
from search import space as search_space
from search import storage as storage_module
from search.errors import UsageError
from search.pruning import ParetoPrunerConfig
from search.run.options import RunOptions

if TYPE_CHECKING:
    from search.training import TrainConfig

DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
METRIC_NAMES = ["SSIM", "MSE"]
MAXIMIZE = [direction == "maximize" for direction in DIRECTIONS]

# Measured on a 2-core CPU (bench/results/throughput.md): two quick-preset workers of one
# thread each finished 1.12x the trials per hour of one process once started, 1.02x end to
# end over 6 trials (each worker starts its own TensorFlow). Too little, on that loaded
# machine, to give up a study that its --seed repeats exactly (with several workers, which
# one samples what depends on timing): so this is `--workers auto`, not the default.
AUTO_WORKERS_WHY = (
    "worker processes with the cores split between them keep a CPU busier than one process "
    "(bench/results/throughput.md)"
)


def plan_placement(options: RunOptions) -> None:
    """Decide the worker count and the GPUs (from --workers, --gpus and the machine).

    A worker's CUDA_VISIBLE_DEVICES shows it one device: only the parent judges --gpus.
    Only an explicit --gpus (or several workers) goes through the worker launcher; a plain
    single run uses whatever GPU TensorFlow sees first.
    """
    if not options.is_parent:
        return
    from search.workers import plan_workers

    auto = options.workers_auto and options.workers is None and options.gpus is None
    options.workers, devices = plan_workers(options.workers, options.gpus, options.workers_per_gpu)
    options.workers_auto = auto and not devices


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
    sqlite_file = Path(defaults.STUDIES_DIR) / f"{options.study}.db"
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


def uses_workers(options: RunOptions) -> bool:
    """Does this (parent) process launch worker processes instead of training itself?"""
    return options.is_parent and ((options.workers or 1) > 1 or options.gpus is not None)


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
    preset = defaults.PRESETS[options.preset]
    return ParetoPrunerConfig(
        max_epochs=max_epochs,
        grace_epochs=options.grace_epochs or preset.grace_epochs,
        eta=options.eta or preset.eta,
        noise_margin=preset.noise_margin if options.noise_margin is None else options.noise_margin,
        envelope_min_complete=(
            preset.envelope_min_complete if options.envelope is None else options.envelope
        ),
    )


def epochs(options: RunOptions) -> int:
    """Epochs per trial: --epochs, else the preset's."""
    return options.epochs or defaults.PRESETS[options.preset].epochs


def training_config(options: RunOptions, seed: int) -> TrainConfig:
    from search.training import TrainConfig

    preset = defaults.PRESETS[options.preset]
    return TrainConfig(
        epochs=epochs(options),
        batch_size=preset.batch_size,
        seed=seed,
        validation_subset=preset.validation_subset,
        train_eval_subset=preset.train_eval_subset,
        test_eval_subset=preset.test_eval_subset,
        mixed_precision=options.mixed_precision,
        deterministic=options.deterministic,
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sampler_seed(options: RunOptions, url: str) -> int:
    """Each process its own sampler seed, so workers sharing a study never suggest in lockstep.

    A `--workers` child adds its index. A process started by hand on another machine has no
    index: on a database server it mixes in host and pid (reproducibility across machines is
    not on offer there anyway); locally `--seed` alone keeps a single run reproducible.
    """
    # Samplers take numpy seeds (0..2^32-1): an offset added to a large --seed wraps around.
    wrap = defaults.SEED_MAX + 1
    if options.worker_index is not None:
        return (options.seed + options.worker_index) % wrap
    servers = {"postgresql", "postgres", "mysql", "mariadb", "grpc"}  # grpc: a storage proxy
    if url.split(":", 1)[0].split("+", 1)[0] in servers:
        return (options.seed + zlib.crc32(worker_name().encode()) % 100_000) % wrap
    return options.seed


def storage_url(options: RunOptions) -> str:
    """The run's storage URL: --storage, else the default for one or several processes."""
    return options.storage or storage_module.default_storage_url(
        options.study, parallel=(options.workers or 1) > 1
    )


def open_run_storage(options: RunOptions) -> tuple[optuna.storages.BaseStorage, str]:
    """Open (never create a study in) the run's storage: a bad URL fails here, in seconds."""
    url = storage_url(options)
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
