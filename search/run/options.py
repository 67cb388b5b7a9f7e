"""What `run` is asked to do: `RunOptions` (the CLI fills it; tests may build it directly) and
`validate`, which refuses bad input before anything touches storage and changes nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from search import defaults
from search import storage as storage_module
from search.errors import UsageError


@dataclass
class RunOptions:
    """Everything `run` needs. Defaults come from search/defaults.py, as the CLI's do."""

    trials: int | None = None
    study: str = defaults.STUDY_NAME
    storage: str | None = None
    data: str = defaults.DATA_SOURCE
    preset: str = defaults.PRESET
    epochs: int | None = None
    subset: int | None = None
    seed: int = defaults.SEED
    sampler: str = defaults.SAMPLER
    pruning: bool = True
    # None: the preset's (chosen by bench/bench_pruning.py on recorded curves)
    eta: int | None = None
    grace_epochs: int | None = None
    noise_margin: float | None = None
    envelope: int | None = None
    timeout: float | None = None
    # None: one per GPU, or one on a CPU-only machine (1: this process alone); with
    # `workers_auto`, min(cores, trials to run) there instead (setup.choose_cpu_workers).
    workers: int | None = None
    gpus: list[int] | None = None
    workers_per_gpu: int = defaults.WORKERS_PER_GPU
    report: bool = True
    keep_models: str = defaults.KEEP_MODEL
    sweep: list[str] = field(default_factory=list)
    repeats: int = defaults.REPEATS
    until_converged: bool = False  # stop sampling once the front stopped moving
    convergence_window: int = defaults.CONVERGENCE_WINDOW
    confirm: int = defaults.CONFIRM  # seeds beyond the first a front configuration needs
    space: list[str] = field(default_factory=list)
    predictor: bool = False
    extra_unlabeled: bool = False
    artifacts: str | None = None
    mixed_precision: bool = False
    deterministic: bool = False
    backend: str = defaults.BACKEND
    heartbeat_interval: int = defaults.HEARTBEAT_INTERVAL_S
    grace_period: int | None = None
    # Set by the `--workers` parent for its children: stop when the study holds this many
    # finished trials, so N workers share one trial budget.
    target_total: int | None = None
    # `--total-trials`: every worker stops once the study holds this many finished sampled
    # trials (search/run/total.py); designed trials are counted apart.
    total_trials: int | None = None
    worker_index: int | None = None
    argv: list[str] = field(default_factory=list)
    # `--workers auto`; setup.plan_placement keeps it only without --gpus and without a GPU,
    # where setup.choose_cpu_workers decides.
    workers_auto: bool = False

    @property
    def is_parent(self) -> bool:
        """This process plans the study (not a worker started by a `--workers` parent)."""
        return self.worker_index is None


def validate(options: RunOptions) -> None:
    """Refuse bad input before anything touches storage; changes nothing."""
    storage_module.validate_study_name(options.study)
    if not 0 <= options.seed <= defaults.SEED_MAX:
        raise UsageError(f"--seed must be a whole number 0..2^32-1, got {options.seed}")
    if options.trials is not None and options.trials < 1:
        raise UsageError(f"--trials must be a positive integer, got {options.trials}")
    if options.total_trials is not None and options.total_trials < 1:
        raise UsageError(f"--total-trials must be a positive integer, got {options.total_trials}")
    if options.preset not in defaults.PRESETS:
        raise UsageError(f"unknown preset {options.preset!r}: use {', '.join(defaults.PRESETS)}")
    if options.sampler not in defaults.SAMPLERS:
        raise UsageError(f"unknown sampler {options.sampler!r}: use {', '.join(defaults.SAMPLERS)}")
    if options.keep_models not in defaults.KEEP_MODELS:
        raise UsageError(f"--keep-models must be one of {', '.join(defaults.KEEP_MODELS)}")
    for name, value in (
        ("--epochs", options.epochs),
        ("--subset", options.subset),
        ("--repeats", options.repeats),
        ("--convergence-window", options.convergence_window),
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
