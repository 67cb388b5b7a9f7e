"""What each section of the report shows, as plain data: frozen dataclasses, no logic.

The context builders (`context`, `bias_variance`, `diagnostics`) fill them from a study; the
figures and templates only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
class Recommendation:
    number: int
    params: dict[str, Any]
    values: dict[str, float]
    test_values: dict[str, float | None]
    method: str


@dataclass(frozen=True)
class Summary:
    study_name: str
    is_vae_search: bool
    objectives: tuple[Objective, ...]
    data: DataProvenance | None
    budget: Budget
    recommendation: Recommendation | None
    sentences: list[str]


@dataclass(frozen=True)
class ParetoRow:
    number: int
    params: dict[str, Any]
    values: tuple[float, ...]
    test_values: tuple[float | None, ...]
    is_knee: bool


@dataclass(frozen=True)
class ParetoInfo:
    objectives: tuple[Objective, ...]
    numbers: list[int]
    values: list[tuple[float, ...]]
    on_front: list[bool]
    params: list[dict[str, Any]]
    front: list[ParetoRow]
    param_names: list[str]
    has_test: bool
    sentences: list[str]


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
    label: str
    x: float | str
    n: int
    best: tuple[float, ...]
    median: tuple[float, ...]


@dataclass(frozen=True)
class SweepGroup:
    x: float | str
    n: int
    mean: tuple[float, ...]
    sd: tuple[float, ...] | None


@dataclass(frozen=True)
class ParamEffect:
    name: str
    numeric: bool
    log_x: bool
    binned: bool
    xs: list[float | str]
    values: list[tuple[float, ...]]
    numbers: list[int]
    groups: list[ValueGroup]
    sweep: list[SweepGroup]


@dataclass(frozen=True)
class EffectsInfo:
    objectives: tuple[Objective, ...]
    effects: list[ParamEffect]


@dataclass(frozen=True)
class SeedSpread:
    """Pooled seed-to-seed standard deviations from repeated `sweep` trials.

    A difference counts as distinguishable only when it exceeds twice the pooled SD.
    """

    n_configs: int
    n_runs: int
    val_sd: float
    gap_sd: float

    @property
    def val_threshold(self) -> float:
        return 2.0 * self.val_sd

    @property
    def gap_threshold(self) -> float:
        return 2.0 * self.gap_sd


@dataclass(frozen=True)
class CapacityGroup:
    label: str
    x: float
    n: int
    train_mse: float
    val_mse: float
    gap: float


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


@dataclass(frozen=True)
class HypervolumeInfo:
    reference: dict[str, float]
    reference_note: str
    numbers: list[int]
    values: list[float]


@dataclass(frozen=True)
class RungRow:
    epoch: int
    n_pruned: int
    epochs_saved: int


@dataclass(frozen=True)
class PruningInfo:
    config: dict[str, Any]
    rows: list[RungRow]
    n_pruned: int
    epochs_saved: int
    epochs_trained: int
    sentence: str | None


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
