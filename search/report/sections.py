"""What each section of the report shows, as plain data: frozen dataclasses, no logic.

The context builders (`context`, `bias_variance`, `diagnostics`) fill them from a study; the
figures and templates only read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from search.configurations import t_quantile
from search.report.latent_use import LatentUseInfo

if TYPE_CHECKING:
    from search.report.answer import AnswerInfo
    from search.report.trust import TrustInfo
from search.report.trials import Objective


@dataclass(frozen=True)
class DataProvenance:
    source: str
    path: str | None
    sha256: str | None
    counts: dict[str, int]
    bundled_subset: bool
    note: str | None


@dataclass(frozen=True)
class Budget:
    states: dict[str, int]
    n_trials: int
    epochs_trained: int
    epochs_saved: int
    epochs_recorded: bool
    trial_seconds: float | None
    elapsed_seconds: float | None
    devices: list[str]
    workers: list[str]
    settings: dict[str, Any]


@dataclass(frozen=True)
class Tie:
    """A configuration the noise cannot tell from the recommended one: what differs, and per
    objective its mean minus the recommended mean and the threshold that difference is within."""

    number: int
    n: int
    differs: dict[str, Any]
    difference: dict[str, float]
    threshold: dict[str, float]


@dataclass(frozen=True)
class Recommendation:
    """The recommended configuration: its mean over seeds decides, its first run is shown beside.

    `number` is the configuration's first (selected) run, the one whose artifacts are shown;
    `values`, `sd` and `test_values` are over all `numbers` (its runs under different seeds).
    """

    number: int
    numbers: tuple[int, ...]
    params: dict[str, Any]
    values: dict[str, float]
    sd: dict[str, float | None]
    first_values: dict[str, float]
    test_values: dict[str, float | None]
    n_test: int
    method: str
    has_knee: bool
    evidence: str
    confirm_command: str | None
    test_sd: dict[str, float | None] = field(default_factory=dict)
    # the run nearest the configuration's mean: its grid and its model stand for it
    representative: int | None = None
    representative_values: dict[str, float] = field(default_factory=dict)
    ties: list[Tie] = field(default_factory=list)
    ties_text: str = ""
    noise_dof: int | None = None
    noise_sd: dict[str, float] | None = None

    @property
    def n(self) -> int:
        return len(self.numbers)


@dataclass(frozen=True)
class Summary:
    study_name: str
    is_vae_search: bool
    objectives: tuple[Objective, ...]
    data: DataProvenance | None
    budget: Budget
    recommendation: Recommendation | None
    sentences: list[str]
    # the budget per trial as "name value" items, each explained where it needs it
    settings_items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParetoRow:
    """A configuration on the front: `values` are means over its `n` runs, `sd` their spread."""

    number: int
    numbers: tuple[int, ...]
    params: dict[str, Any]
    values: tuple[float, ...]
    sd: tuple[float, ...] | None
    test_values: tuple[float | None, ...]
    is_knee: bool

    @property
    def n(self) -> int:
        return len(self.numbers)


@dataclass(frozen=True)
class ParetoInfo:
    """One point per configuration (its mean over seeds), named by its first trial number."""

    objectives: tuple[Objective, ...]
    numbers: list[int]
    values: list[tuple[float, ...]]
    n: list[int]
    sd: list[tuple[float, ...] | None]
    on_front: list[bool]
    params: list[dict[str, Any]]
    front: list[ParetoRow]
    param_names: list[str]
    has_test: bool
    n_trials: int
    sentences: list[str]
    intro: str = ""


@dataclass(frozen=True)
class ReconstructionPanel:
    number: int
    label: str
    png: bytes


@dataclass(frozen=True)
class ReconstructionInfo:
    originals_png: bytes | None
    panels: list[ReconstructionPanel]
    note: str | None


@dataclass(frozen=True)
class ValueGroup:
    """Configurations sharing one parameter value (or bin): best and median of their means."""

    label: str
    x: float | str
    n: int
    best: tuple[float, ...]
    median: tuple[float, ...]
    n_runs: int = 0


@dataclass(frozen=True)
class SweepGroup:
    x: float | str
    n: int
    mean: tuple[float, ...]
    sd: tuple[float, ...] | None


@dataclass(frozen=True)
class ParamEffect:
    """One point per configuration (`values` are means over its `n` runs)."""

    name: str
    numeric: bool
    log_x: bool
    binned: bool
    xs: list[float | str]
    values: list[tuple[float, ...]]
    numbers: list[int]
    n: list[int]
    groups: list[ValueGroup]
    sweep: list[SweepGroup]
    # a categorical parameter's values as drawn, in search-space order (empty when numeric)
    categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EffectsInfo:
    objectives: tuple[Objective, ...]
    effects: list[ParamEffect]
    intro: str = ""
    constant_sentence: str | None = None  # the parameters that took one value, if any


@dataclass(frozen=True)
class SeedSpread:
    """Seed-to-seed standard deviations pooled over every configuration run more than once.

    A difference of two means (of n_a and n_b runs) counts only when it exceeds
    t(dof) x SD x sqrt(1/n_a + 1/n_b): the t quantile times the standard error of the
    difference. `which` says in words which configurations the spread was pooled over.
    """

    n_configs: int
    n_runs: int
    dof: int
    val_sd: float
    gap_sd: float
    which: str

    def val_threshold(self, n_a: int = 1, n_b: int = 1) -> float:
        return t_quantile(self.dof) * self.val_sd * math.sqrt(1 / n_a + 1 / n_b)

    def gap_threshold(self, n_a: int = 1, n_b: int = 1) -> float:
        return t_quantile(self.dof) * self.gap_sd * math.sqrt(1 / n_a + 1 / n_b)


@dataclass(frozen=True)
class CapacityGroup:
    """One value (or bin) of a capacity axis; `n` runs in `n_configs` configurations."""

    label: str
    x: float
    n: int
    train_mse: float
    val_mse: float
    gap: float
    n_configs: int = 1
    # a sweep value's seed-to-seed SD of validation MSE and of the gap (None: one run, or a
    # value pooling several configurations)
    val_sd: float | None = None
    gap_sd: float | None = None


@dataclass(frozen=True)
class CapacityAxis:
    """Train/validation error along one capacity axis; `statistic` is how trials per value
    were combined ("mean" over the repeats of a sweep, else "median")."""

    name: str
    title: str
    source: str
    statistic: str
    log_x: bool
    xs: list[float]
    train_mse: list[float]
    val_mse: list[float]
    numbers: list[int]
    groups: list[CapacityGroup]
    sentences: list[str]
    # the command that would measure this axis's noise, for a study that cannot judge it yet
    evidence_command: str | None = None


@dataclass(frozen=True)
class LearningCurve:
    number: int
    epochs: list[int]
    val_mse: list[float | None]
    val_ssim: list[float | None]
    loss: list[float | None]


@dataclass(frozen=True)
class BiasVarianceInfo:
    note: str | None
    spread: SeedSpread | None
    spread_sentence: str | None
    axes: list[CapacityAxis]
    curves: list[LearningCurve]
    curve_sentence: str | None


@dataclass(frozen=True)
class ObjectiveImportance:
    objective: Objective
    importances: dict[str, float]


@dataclass(frozen=True)
class ImportanceInfo:
    per_objective: list[ObjectiveImportance]
    note: str | None
    # why optuna-dashboard's importance panel may rank the parameters differently
    dashboard_sentence: str | None = None


@dataclass(frozen=True)
class HypervolumeInfo:
    """Hypervolume of the configurations' means as they stood after each completed trial."""

    reference: dict[str, float]
    reference_note: str
    numbers: list[int]
    values: list[float]
    basis: str


@dataclass(frozen=True)
class RungRow:
    epoch: int
    n_pruned: int
    epochs_saved: int


@dataclass(frozen=True)
class PruningInfo:
    """Pruning of sampled trials; designed trials (experiments) are counted apart."""

    config: dict[str, Any]
    rows: list[RungRow]
    n_pruned: int
    epochs_saved: int
    epochs_trained: int
    sentence: str | None
    n_sampled: int = 0
    n_designed: int = 0
    n_designed_pruned: int = 0
    designed_sentence: str | None = None


@dataclass(frozen=True)
class TimelineBar:
    number: int
    state: str
    start_s: float
    end_s: float
    worker: str


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    devices: str
    states: dict[str, int]


@dataclass(frozen=True)
class DiagnosticsInfo:
    hypervolume: HypervolumeInfo | None
    pruning: PruningInfo
    timeline: list[TimelineBar]
    workers: list[WorkerRow]


@dataclass(frozen=True)
class LatentInfo:
    number: int | None
    latent_dim: int | None
    method: str
    coords: np.ndarray | None
    labels: np.ndarray | None
    explained: tuple[float, ...]
    prior_png: bytes | None
    note: str | None


@dataclass(frozen=True)
class RunRow:
    command: str
    started: str
    host: str
    device: str
    storage: str


@dataclass(frozen=True)
class ReproInfo:
    runs: list[RunRow]
    versions: dict[str, str]
    report_versions: dict[str, str]
    seeds: dict[str, str]
    search_space: list[dict[str, str]]
    fixed_params: dict[str, Any]
    settings: dict[str, str]


@dataclass(frozen=True)
class ReportContext:
    """Everything the templates and figures need, as plain data."""

    study_name: str
    generated_at: str
    objectives: tuple[Objective, ...]
    n_complete: int
    summary: Summary
    pareto: ParetoInfo
    reconstructions: ReconstructionInfo
    effects: EffectsInfo
    bias_variance: BiasVarianceInfo
    importance: ImportanceInfo
    diagnostics: DiagnosticsInfo
    latent: LatentInfo
    reproducibility: ReproInfo
    notes: list[str] = field(default_factory=list)
    latent_use: LatentUseInfo = field(default_factory=LatentUseInfo)
    answer: AnswerInfo | None = None
    trust: TrustInfo | None = None
