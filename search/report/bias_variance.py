"""Section 5, bias and variance: train against validation error along capacity axes.

Trials are first grouped into configurations (equal parameters) and averaged over their seeds.
Along an axis with a one-factor `sweep` (other parameters fixed), each value is the mean of its
sweep configuration's runs; otherwise, the median over the configurations with that value. The
seed-to-seed spread pooled over every repeated configuration (sweeps, repeats and confirmation
runs alike) decides what counts as a difference; without any repeat, no verdict is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from search.configurations import (
    CONFIDENCE,
    Configuration,
    Run,
    group_runs,
    pooled_noise,
    t_quantile,
)
from search.records import CONFIRMS, N_PARAMS, SWEEP, metric_key
from search.report import prose
from search.report.analysis import quantile_bins
from search.report.sections import (
    BiasVarianceInfo,
    CapacityAxis,
    CapacityGroup,
    LearningCurve,
    SeedSpread,
)
from search.report.trials import StudyRecords, TrialRecord, as_float


def _error_runs(records: StudyRecords) -> list[Configuration]:
    """Configurations of the complete trials that recorded a train error, with runs of
    (validation MSE, gap) per seed."""
    error = records.error
    assert error is not None
    runs = []
    for trial in records.complete:
        train = trial.number_attr(metric_key("train", "mse"))
        val = trial.metric("val", error)
        if train is not None and val is not None:
            runs.append(Run(trial.number, trial.params, (val, val - train)))
    return group_runs(runs)


def _which(records: StudyRecords, repeated: Sequence[Configuration]) -> str:
    """In words, which configurations were repeated: sweep values, confirmed ones, others."""
    sweeps: dict[str, int] = {}
    confirmed = other = 0
    for configuration in repeated:
        trials = [records.trial(n) for n in configuration.numbers]
        names = {str(t.dict_attr(SWEEP).get("name")) for t in trials if t.dict_attr(SWEEP)}
        if names:
            for name in names:
                sweeps[name] = sweeps.get(name, 0) + 1
        elif any(t.int_attr(CONFIRMS) is not None for t in trials):
            confirmed += 1
        else:
            other += 1
    parts = [prose.fmt_count(count, f"{name} sweep value") for name, count in sweeps.items()]
    if confirmed:
        parts.append(prose.fmt_count(confirmed, "confirmed configuration"))
    if other:
        parts.append(prose.fmt_count(other, "other repeated configuration"))
    return ", ".join(parts)


def seed_spread(records: StudyRecords) -> SeedSpread | None:
    """Pooled SD of validation MSE and of the gap over every configuration run more than once."""
    if records.error is None:
        return None
    configurations = _error_runs(records)
    noise = pooled_noise(configurations)
    if noise is None:
        return None
    return SeedSpread(
        n_configs=noise.n_configs,
        n_runs=noise.n_runs,
        dof=noise.dof,
        val_sd=noise.sd[0],
        gap_sd=noise.sd[1],
        which=_which(records, [c for c in configurations if c.n >= 2]),
    )


CAPACITY_AXES = (
    ("latent_dim", "latent dimension k"),
    ("n_layers", "layer count l"),
    ("n_params", "parameter count"),
)
# Axes a one-factor sweep can vary (n_params is measured, not set).
SWEEPABLE = ("latent_dim", "n_layers")


@dataclass(frozen=True)
class _Point:
    """One configuration on a capacity axis: its position and mean errors over its runs."""

    x: float
    train_mse: float
    val_mse: float
    gap: float
    n: int
    number: int
    in_sweep: bool
    sd: tuple[float, ...] | None = None  # over its runs: validation MSE, gap


def _points(records: StudyRecords, name: str) -> list[_Point]:
    points = []
    for configuration in _error_runs(records):
        first = records.trial(configuration.first)
        x = (
            as_float(configuration.params.get(name))
            if name != "n_params"
            else first.number_attr(N_PARAMS)
        )
        if x is None:
            continue
        val, gap = configuration.mean
        in_sweep = any(
            records.trial(n).dict_attr(SWEEP).get("name") == name for n in configuration.numbers
        )
        points.append(
            _Point(
                x,
                val - gap,
                val,
                gap,
                configuration.n,
                configuration.first,
                in_sweep,
                configuration.sd,
            )
        )
    return sorted(points, key=lambda p: (p.x, p.number))


def _group(label: str, x: float, members: list[_Point], statistic: str) -> CapacityGroup:
    # a sweep value's error bar: its one configuration's SD over seeds
    sd = members[0].sd if statistic == "mean" and len(members) == 1 else None
    if statistic == "mean":
        # a sweep value: the mean over all runs of its configuration(s), weighted by runs
        weights = np.array([p.n for p in members], dtype=np.float64)

        def centre(values: list[float]) -> float:
            return float(np.average(values, weights=weights))
    else:

        def centre(values: list[float]) -> float:
            return float(np.median(values))

    return CapacityGroup(
        label=label,
        x=x,
        n=sum(p.n for p in members),
        train_mse=centre([p.train_mse for p in members]),
        val_mse=centre([p.val_mse for p in members]),
        gap=centre([p.gap for p in members]),
        n_configs=len(members),
        val_sd=sd[0] if sd else None,
        gap_sd=sd[1] if sd else None,
    )


def _capacity_axis(
    records: StudyRecords, name: str, title: str, spread: SeedSpread | None
) -> CapacityAxis | None:
    points = _points(records, name)
    if not points:
        return None
    swept = [p for p in points if p.in_sweep]
    through = _one_factor(records) if name == "n_params" else None
    if len({p.x for p in swept}) >= 2:
        used, statistic = swept, "mean"
        source = "sweep configurations, other parameters fixed; mean over each one's seeds"
    elif through is not None and len({p.x for p in points}) >= 2:
        # every configuration is one sweep's: the parameter count follows that one parameter
        used, statistic = points, "mean"
        source = (
            f"the {through} sweep's configurations, other parameters fixed, so the count "
            f"follows {through}; mean over each one's seeds"
        )
    else:
        used, statistic = points, "median"
        source = "median over configurations, other parameters vary"
    xs = np.array([p.x for p in used])
    bins = quantile_bins(xs, geometric=name == "n_params")
    if bins is None:
        values = [float(v) for v in np.unique(xs)]
        bins = [(label, v, xs == v) for label, v in zip(value_labels(values), values, strict=True)]
    groups = [
        _group(
            label, centre, [p for p, inside in zip(used, members, strict=True) if inside], statistic
        )
        for label, centre, members in bins
    ]
    command = (
        prose.sweep_command(records.name, name, sorted({p.x for p in used}))
        if name in SWEEPABLE
        else prose.confirm_command(records.name)
    )
    axis = CapacityAxis(
        name=name,
        title=title,
        source=source,
        statistic=statistic,
        log_x=name == "n_params",
        xs=[p.x for p in used],
        train_mse=[p.train_mse for p in used],
        val_mse=[p.val_mse for p in used],
        numbers=[p.number for p in used],
        groups=groups,
        sentences=[],
        evidence_command=command,
    )
    sentences = prose.capacity_sentences(axis, spread)
    if statistic == "mean":
        sentences += _missing_sweep_values(records, name, {p.x for p in used})
    return replace(axis, sentences=sentences)


def _one_factor(records: StudyRecords) -> str | None:
    """The swept parameter when every configuration with a train error belongs to a sweep of
    it and no other parameter varies between them (a study that is one sweep); else None."""
    configurations = _error_runs(records)
    names = {
        records.trial(n).dict_attr(SWEEP).get("name")
        for configuration in configurations
        for n in configuration.numbers
    }
    if len(configurations) < 2 or len(names) != 1 or None in names:
        return None
    name = str(names.pop())
    keys = {key for c in configurations for key in c.params}
    varying = {k for k in keys if len({repr(c.params.get(k)) for c in configurations}) > 1}
    return name if varying == {name} else None


def _missing_sweep_values(records: StudyRecords, name: str, measured: set[float]) -> list[str]:
    """A sweep value without a complete run would silently shorten the axis: say so."""
    planned = {
        x: t.state
        for t in records.trials
        if t.dict_attr(SWEEP).get("name") == name
        and (x := as_float(t.dict_attr(SWEEP).get("value"))) is not None
        and x not in measured
    }
    if not planned:
        return []
    values = [prose.fmt_number(_as_int_if_whole(x)) for x in sorted(planned)]
    states = sorted({state.lower() for state in planned.values()})
    return [
        f"The sweep also planned {name} = {', '.join(values)}, but no run of "
        f"{'it' if len(values) == 1 else 'them'} completed ({' or '.join(states)}), so the "
        "comparison above does not cover "
        f"{'that value' if len(values) == 1 else 'those values'}."
    ]


def value_labels(values: list[float]) -> list[str]:
    """Short labels (263k), or whole numbers where short ones would collide: 231,521 and
    232,305 both read "232k", and "232k, 232k cannot be told apart" says nothing."""
    numbers = [_as_int_if_whole(v) for v in values]
    labels = [prose.fmt_number(v) for v in numbers]
    if len(set(labels)) < len(labels):
        labels = [f"{v:,}" if isinstance(v, int) else f"{v:.6g}" for v in numbers]
    return labels


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


def bias_variance_info(records: StudyRecords, shown_front: list[TrialRecord]) -> BiasVarianceInfo:
    """Section 5; `shown_front` are the runs whose learning curves are drawn (one per front
    configuration, spread along the front)."""
    error = records.error
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
            "No configuration was run under more than one seed, so the seed-to-seed spread is "
            "unknown: the numbers below are single runs, not tested against noise, and no "
            "verdict is drawn from them. Repeats would measure it: a repeated sweep (its command "
            "is given under each axis below) or confirmation runs of the front "
            f"(`{prose.confirm_command(records.name)}`)."
        )
    else:
        spread_sentence = (
            f"Seed-to-seed spread, pooled over all {spread.n_configs} configurations run under "
            f"more than one seed ({spread.which}; {spread.n_runs} runs, {spread.dof} degrees of "
            f"freedom): validation MSE SD {prose.fmt_mse(spread.val_sd)}, gap SD "
            f"{prose.fmt_mse(spread.gap_sd)}. Two means of n_a and n_b runs are called different "
            f"only when they differ by more than t x SD x sqrt(1/n_a + 1/n_b), the "
            f"{int(100 * CONFIDENCE)} % t quantile ({t_quantile(spread.dof):.2f} at "
            f"{spread.dof} degrees of freedom) times the standard error of the difference: for "
            f"two single runs {prose.fmt_mse(spread.val_threshold(1, 1))} in validation MSE, for "
            f"two means of 3 runs {prose.fmt_mse(spread.val_threshold(3, 3))}."
        )
    return BiasVarianceInfo(note, spread, spread_sentence, axes, curves, curve_sentence)
