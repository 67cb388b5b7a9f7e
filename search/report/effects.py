"""Section 4, the effect of each hyperparameter: configurations grouped per parameter value
(or quantile bin), and the designed one-factor sweeps with their mean and SD over seeds."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from search import records as keys  # the stored names (search.records owns them)
from search.configurations import Configuration
from search.report import prose
from search.report.analysis import quantile_bins
from search.report.sections import EffectsInfo, ParamEffect, SweepGroup, ValueGroup
from search.report.trials import Objective, StudyRecords, as_float


def _is_number(value: Any) -> bool:
    return as_float(value) is not None


def _groups_of(
    xs: list[Any],
    configurations: list[Configuration],
    objectives: tuple[Objective, ...],
    numeric: bool,
    log_x: bool,
    categories: list[str],
) -> tuple[list[ValueGroup], bool]:
    """Configurations grouped per parameter value (per quantile bin for many numeric values)."""
    bins = quantile_bins(np.array(xs, dtype=np.float64), geometric=log_x) if numeric else None
    if bins is not None:
        groups = [
            _value_group(
                label,
                centre,
                [c for c, m in zip(configurations, members, strict=True) if m],
                objectives,
            )
            for label, centre, members in bins
        ]
        return groups, True
    groups = []

    def order(value: Any) -> tuple[int, float, str]:
        if numeric:
            return (0, float(value), "")
        label = prose.fmt_number(value)
        return (categories.index(label) if label in categories else len(categories), 0.0, label)

    for value in sorted(set(xs), key=order):
        having = [c for c, x in zip(configurations, xs, strict=True) if x == value]
        x: float | str = float(value) if numeric else prose.fmt_number(value)
        groups.append(_value_group(prose.fmt_number(value), x, having, objectives))
    return groups, False


def _value_group(
    label: str,
    x: float | str,
    configurations: list[Configuration],
    objectives: tuple[Objective, ...],
) -> ValueGroup:
    """Best and median of the configurations' means (a lucky seed is not a configuration's)."""
    values = np.array([c.mean for c in configurations], dtype=np.float64)
    best = tuple(
        float(values[:, o.index].max() if o.maximize else values[:, o.index].min())
        for o in objectives
    )
    median = tuple(float(np.median(values[:, o.index])) for o in objectives)
    return ValueGroup(
        label=label,
        x=x,
        n=len(configurations),
        best=best,
        median=median,
        n_runs=sum(c.n for c in configurations),
    )


def _sweep_groups(
    records: StudyRecords, configurations: list[Configuration], name: str, numeric: bool
) -> list[SweepGroup]:
    """Per value of a one-factor sweep: the mean and SD over every run of its configuration
    (the tagged sweep runs and any confirmation runs of the same parameters)."""
    by_value: dict[Any, list[tuple[float, ...]]] = defaultdict(list)
    for configuration in configurations:
        tags = [records.trial(n).dict_attr(keys.SWEEP) for n in configuration.numbers]
        values = {
            repr(t["value"]): t["value"] for t in tags if t.get("name") == name and "value" in t
        }
        for value in values.values():
            by_value[value].extend(configuration.runs)
    groups = []
    for value in sorted(by_value, key=lambda v: float(v) if numeric and _is_number(v) else str(v)):
        arr = np.array(by_value[value])
        sd = tuple(float(s) for s in arr.std(axis=0, ddof=1)) if len(arr) >= 2 else None
        x: float | str = float(value) if numeric and _is_number(value) else prose.fmt_number(value)
        groups.append(
            SweepGroup(x=x, n=len(arr), mean=tuple(float(m) for m in arr.mean(axis=0)), sd=sd)
        )
    return groups


def effects_info(records: StudyRecords, configurations: list[Configuration]) -> EffectsInfo:
    space = records.search_space()
    effects = []
    constant: list[str] = []
    for name in records.param_names():
        having = [c for c in configurations if name in c.params]
        if not having:
            continue
        xs = [c.params[name] for c in having]
        if len({prose.fmt_number(x) for x in xs}) < 2:
            constant.append(name)  # one value: no effect can be seen, so no chart
            continue
        spec = space.get(name, {})
        # a categorical parameter is drawn on a categorical axis even when its choices are
        # numbers (filters 8, 16, 32, 64): the sampler never saw values in between
        categorical = spec.get("type") == "categorical"
        numeric = not categorical and all(_is_number(x) for x in xs)
        seen = {prose.fmt_number(x) for x in xs}
        choices = [prose.fmt_number(c) for c in spec.get("choices") or []] if categorical else []
        categories = [c for c in choices if c in seen] + sorted(seen - set(choices))
        positive = numeric and min(float(x) for x in xs) > 0
        # log where the space is log; a study that records no space: where values span 20x
        log_x = (
            bool(spec.get("log"))
            if spec
            else (positive and max(float(x) for x in xs) / min(float(x) for x in xs) >= 20)
        )
        groups, binned = _groups_of(xs, having, records.objectives, numeric, log_x, categories)
        effects.append(
            ParamEffect(
                name=name,
                numeric=numeric,
                log_x=bool(log_x and positive),
                binned=binned,
                xs=[float(x) if numeric else prose.fmt_number(x) for x in xs],
                values=[c.mean for c in having],
                numbers=[c.first for c in having],
                n=[c.n for c in having],
                groups=groups,
                sweep=_sweep_groups(records, configurations, name, numeric),
                categories=categories if not numeric else [],
            )
        )
    return EffectsInfo(records.objectives, effects, _intro(effects), _constant(constant))


def _constant(constant: list[str]) -> str | None:
    if not constant:
        return None
    names = ", ".join(constant[:-1]) + (" and " if len(constant) > 1 else "") + constant[-1]
    return (
        f"{names} took one value in every complete trial, so "
        f"{'it has' if len(constant) == 1 else 'they have'} no chart."
    )


def _intro(effects: list[ParamEffect]) -> str:
    """How to read the charts; names the sweeps that were run, and only those."""
    swept = [e.name for e in effects if e.sweep]
    text = (
        "Each chart is one parameter against each objective: every configuration (parameter "
        "set) is a point at its mean over its runs under different seeds (hover for n), so one "
        "lucky seed is not drawn as a configuration's result"
        + (
            ", and where two or more configurations share a value a dash marks the median of "
            "their means."
            if any(g.n >= 2 for e in effects for g in e.groups)
            else "."
        )
    )
    if len(effects) > 1:
        text += (
            " Other parameters vary between the points, so no line joins them: a line would "
            "suggest a trend that other parameters may have made."
        )
    elif effects:
        text += (
            f" Only {effects[0].name} varies between the configurations, so its chart shows its "
            "effect alone."
        )
    if swept:
        names = " and ".join(swept)
        text += (
            f" The designed one-factor {'sweep' if len(swept) == 1 else 'sweeps'} of {names} "
            "(one base configuration, one parameter changed) "
            f"{'is' if len(swept) == 1 else 'are'} joined by a line: the mean over seeds with "
            "the seed-to-seed standard deviation as error bars, and n (in the legend where every "
            "value has the same n, else beside each point)."
        )
    return text
