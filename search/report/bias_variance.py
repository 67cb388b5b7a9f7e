"""Section 5, bias and variance: train against validation error along capacity axes.

Trials per value are combined by their mean when a one-factor `sweep` of that axis exists
(other parameters fixed, several seeds), else by their median over all complete trials. The
seed-to-seed spread of repeated sweep configurations decides what counts as a difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from search.report import prose
from search.report.analysis import MAX_SHOWN_FRONT, quantile_bins, spread_along_front
from search.report.sections import (
    BiasVarianceInfo,
    CapacityAxis,
    CapacityGroup,
    LearningCurve,
    SeedSpread,
)
from search.report.trials import StudyRecords, TrialRecord, as_float


def seed_spread(records: StudyRecords) -> SeedSpread | None:
    """Pooled SD of validation MSE and of the gap over `sweep` configurations run more than once."""
    error = records.error
    if error is None:
        return None
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for trial in records.complete:
        sweep = trial.dict_attr("sweep")
        train = trial.number_attr("train_mse")
        val = trial.metric("val", error)
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
    error = records.error
    assert error is not None
    rows = []
    for trial in records.complete:
        x = (
            as_float(trial.params.get(name))
            if name != "n_params"
            else trial.number_attr("n_params")
        )
        train_value = trial.number_attr("train_mse")
        val_value = trial.metric("val", error)
        if x is None or train_value is None or val_value is None:
            continue
        in_sweep = trial.dict_attr("sweep").get("name") == name
        rows.append((x, train_value, val_value, trial.number, in_sweep))
    if not rows:
        return None
    sweep_rows = [r for r in rows if r[4]]
    centre_of: Callable[[np.ndarray], Any]
    if len({r[0] for r in sweep_rows}) >= 2:
        used, source, statistic = sweep_rows, "sweep trials, other parameters fixed", "mean"
        centre_of = np.mean
    else:
        used, source, statistic = rows, "all complete trials, other parameters vary", "median"
        centre_of = np.median
    xs = np.array([r[0] for r in used])
    train = np.array([r[1] for r in used])
    val = np.array([r[2] for r in used])
    bins = quantile_bins(xs, geometric=name == "n_params")
    if bins is None:
        bins = [
            (prose.fmt_number(_as_int_if_whole(float(v))), float(v), xs == v) for v in np.unique(xs)
        ]
    groups = [
        CapacityGroup(
            label=label,
            x=centre,
            n=int(members.sum()),
            train_mse=float(centre_of(train[members])),
            val_mse=float(centre_of(val[members])),
            gap=float(centre_of(val[members] - train[members])),
        )
        for label, centre, members in bins
    ]
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


def bias_variance_info(records: StudyRecords, front: list[TrialRecord]) -> BiasVarianceInfo:
    error = records.error
    shown_front = (
        spread_along_front(front, error.index if error else -1, MAX_SHOWN_FRONT) if front else []
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
