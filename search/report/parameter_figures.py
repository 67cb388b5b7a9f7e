"""Figures of one parameter against the objectives (section 4) and of one capacity axis
against train and validation error (section 5).

The axis follows the parameter: a categorical parameter gets a categorical axis in its
search-space order, a numeric one a numeric axis (log where the space or the values are),
with ticks thinned so their labels never overprint. A line joins points only where they are
comparable: a designed one-factor sweep (one base configuration, one parameter changed).
Values per parameter value that pool configurations differing in other parameters (median,
best) are markers, never a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from search.report import figure_style as style
from search.report import prose
from search.report.sections import CapacityAxis, ParamEffect, ValueGroup
from search.report.trials import Objective


def _x_axis(effect: ParamEffect, axis_px: float) -> dict[str, Any]:
    """The x axis of an effect panel: categorical, or numeric with ticks thinned to the labels
    that fit its `axis_px`."""
    if not effect.numeric:
        return {"type": "category", "categoryorder": "array", "categoryarray": effect.categories}
    axis: dict[str, Any] = {"type": "log" if effect.log_x else "linear"}
    if not effect.binned:
        values = [float(g.x) for g in effect.groups]
        ticks = style.thin_ticks(values, effect.log_x, axis_px=axis_px)
        axis.update(tickvals=ticks, ticktext=[style.tick_label(v) for v in ticks])
    return axis


def pooled_groups(effect: ParamEffect) -> list[ValueGroup]:
    """The values (or bins) that pool two or more configurations: only there is a median a
    summary; the median of one configuration is that point again, drawn over it."""
    return [g for g in effect.groups if g.n >= 2]


def sweep_label(effect: ParamEffect) -> str:
    """The sweep's legend entry; n in it when every sweep value has the same n, else n is
    printed beside each point (the PDF's static figures have no hover)."""
    ns = {g.n for g in effect.sweep}
    if len(ns) == 1:
        n = ns.pop()
        return f"designed sweep: mean ± SD over {prose.fmt_count(n, 'seed')} each"
    return "designed sweep: mean ± SD over seeds"


def effect_figure(effect: ParamEffect, objectives: Sequence[Objective]) -> go.Figure:
    """Each objective against one parameter: configurations (means over their seeds) as
    points, the median of those means per value as a dash, a designed sweep's mean ± SD over
    seeds as a line with error bars."""
    layout = style.panels(len(objectives))
    pooled = pooled_groups(effect)
    group_x = [g.x for g in pooled]
    per = " per bin" if effect.binned else " per value"
    same_n = len({g.n for g in effect.sweep}) == 1
    traces: list[dict[str, Any]] = []
    for i, objective in enumerate(objectives):
        first = i == 0
        ref = style.axis_ref(i)
        j = objective.index
        traces += [
            {
                "type": "scatter",
                **ref,
                "x": effect.xs,
                "y": [v[j] for v in effect.values],
                "mode": "markers",
                "name": "configurations (mean over seeds)",
                "legendgroup": "configurations",
                "showlegend": first,
                "marker": {"color": style.DOMINATED_COLOUR, "size": 6},
                "hovertext": [
                    f"configuration of trial {num}, {prose.fmt_count(n, 'run')}"
                    for num, n in zip(effect.numbers, effect.n, strict=True)
                ],
                "hoverinfo": "text+y",
            },
        ]
        if pooled:
            traces.append(
                {
                    "type": "scatter",
                    **ref,
                    "x": group_x,
                    "y": [g.median[j] for g in pooled],
                    "mode": "markers",
                    "name": "median of two or more configurations" + per,
                    "legendgroup": "median",
                    "showlegend": first,
                    "marker": {
                        "color": style.MEDIAN_COLOUR,
                        "size": 14,
                        "symbol": "line-ew",
                        "line": {"width": 2.5, "color": style.MEDIAN_COLOUR},
                    },
                }
            )
        if effect.sweep:
            traces.append(
                {
                    "type": "scatter",
                    **ref,
                    "x": [g.x for g in effect.sweep],
                    "y": [g.mean[j] for g in effect.sweep],
                    "error_y": {
                        "type": "data",
                        "visible": True,
                        "array": [g.sd[j] if g.sd else 0.0 for g in effect.sweep],
                    },
                    # n beside each point unless the legend holds the one n of them all
                    "mode": "lines+markers" if same_n else "lines+markers+text",
                    "text": None if same_n else [f"n={g.n}" for g in effect.sweep],
                    "textposition": "top right",
                    "textfont": {"size": 9},
                    "hovertext": [
                        f"sweep value, {prose.fmt_count(g.n, 'run')}" for g in effect.sweep
                    ],
                    "hoverinfo": "text+y",
                    "name": sweep_label(effect),
                    "legendgroup": "sweep",
                    "showlegend": first,
                    "line": {"color": "#111827", "width": 1.5},
                    "marker": {"color": "#111827", "size": 8, "symbol": "diamond"},
                }
            )
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"].update(
            title=style.title(style.text(effect.name)),
            **_x_axis(effect, style.panel_px(len(objectives))),
        )
        layout[f"yaxis{suffix}"].update(title=style.title(style.metric_title(objective)))
    return style.figure(traces, 340, **layout)


def capacity_figure(axis: CapacityAxis) -> go.Figure:
    """Train and validation MSE against one capacity axis, and their gap. The per-value
    values are joined by a line only for a designed sweep (`statistic` "mean")."""
    layout = style.panels(2, spacing=0.14)
    xs = [g.x for g in axis.groups]
    hover = [f"configuration of trial {n}" for n in axis.numbers]
    joined = axis.statistic == "mean"
    mode = "lines+markers" if joined else "markers"
    what = "sweep mean" if joined else "median"
    traces: list[dict[str, Any]] = []
    for name, colour, points, per_value, sds in (
        ("train", style.TRAIN_COLOUR, axis.train_mse, [g.train_mse for g in axis.groups], []),
        (
            "validation",
            style.VALIDATION_COLOUR,
            axis.val_mse,
            [g.val_mse for g in axis.groups],
            [g.val_sd for g in axis.groups],
        ),
        (
            "gap",
            style.GAP_COLOUR,
            None,
            [g.gap for g in axis.groups],
            [g.gap_sd for g in axis.groups],
        ),
    ):
        # a sweep's mean keeps its seed-to-seed SD as error bars (train: under validation's)
        bars = joined and any(sd is not None for sd in sds)
        error = (
            {"error_y": {"type": "data", "visible": True, "array": [sd or 0.0 for sd in sds]}}
            if bars
            else {}
        )
        ref = style.axis_ref(1 if name == "gap" else 0)
        if points is None:
            points = [v - t for v, t in zip(axis.val_mse, axis.train_mse, strict=True)]
        traces += [
            {
                "type": "scatter",
                **ref,
                "x": axis.xs,
                "y": points,
                "mode": "markers",
                "name": f"{name} (configurations)",
                "marker": {"color": colour, "size": 5, "opacity": 0.3},
                "hovertext": hover,
                "hoverinfo": "text+y",
            },
            {
                "type": "scatter",
                **ref,
                "x": xs,
                "y": per_value,
                "mode": mode,
                "name": f"{name} ({what}{' ± SD' if bars else ''})",
                **error,
                "line": {"color": colour, "width": 2},
                "marker": {"color": colour, "size": 8 if joined else 12}
                | (
                    {} if joined else {"symbol": "line-ew", "line": {"width": 2.5, "color": colour}}
                ),
            },
        ]
    # a bin's label ("231k-1.63M") is too long for a tick: its centre is labelled instead
    labels = {g.x: g.label for g in axis.groups if "-" not in g.label}
    ticks = style.thin_ticks(
        xs,
        axis.log_x,
        axis_px=style.panel_px(2, spacing=0.14),
        label=lambda t: labels.get(t, style.tick_label(t)),
    )
    for suffix, y_title in (("", "train and validation MSE"), ("2", "gap: validation - train")):
        layout[f"xaxis{suffix}"].update(
            title=style.title(style.text(axis.title)),
            type="log" if axis.log_x else "linear",
            tickvals=ticks,
            ticktext=[labels.get(t, style.tick_label(t)) for t in ticks],
        )
        layout[f"yaxis{suffix}"].update(title=style.title(y_title))
    return style.figure(traces, 340, **layout)
