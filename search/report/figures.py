"""Context -> Plotly figures: one small function per figure, each only draws what it is given."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from search.report import prose
from search.report.latent_use import rate_distortion_figure
from search.report.sections import (
    CapacityAxis,
    DiagnosticsInfo,
    EffectsInfo,
    HypervolumeInfo,
    ImportanceInfo,
    LatentInfo,
    LearningCurve,
    ParamEffect,
    ParetoInfo,
    ReportContext,
    TimelineBar,
)
from search.report.trials import Objective

FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
FRONT_COLOUR = "#c2410c"
DOMINATED_COLOUR = "rgba(100, 116, 139, 0.35)"
TRAIN_COLOUR = "#2563eb"
VALIDATION_COLOUR = "#c2410c"
GAP_COLOUR = "#7c3aed"
MEDIAN_COLOUR = "#0f766e"
STATE_COLOURS = {
    "COMPLETE": "#2563eb",
    "PRUNED": "#f59e0b",
    "FAIL": "#dc2626",
    "RUNNING": "#10b981",
    "WAITING": "#94a3b8",
}
DIGIT_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
SERIES_COLOURS = (
    "#2563eb",
    "#c2410c",
    "#059669",
    "#7c3aed",
    "#db2777",
    "#0891b2",
    "#65a30d",
    "#b45309",
)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: its anchor key, caption and the Plotly figure itself."""

    key: str
    caption: str
    figure: go.Figure
    height: int


_AXIS = {
    "automargin": True,
    "gridcolor": "#e5e7eb",
    "linecolor": "#9ca3af",
    "zeroline": False,
    "ticks": "outside",
    "tickcolor": "#9ca3af",
}
# A small template of our own: Plotly's named templates are large, and validating and
# serialising one per figure was most of the time spent building figures.
TEMPLATE = {
    "layout": {
        "font": {"family": FONT, "size": 12, "color": "#1f2937"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": list(SERIES_COLOURS),
        "xaxis": _AXIS,
        "yaxis": {**_AXIS, "exponentformat": "none"},  # 0.0004, not "400µ"
        "hoverlabel": {"font": {"family": FONT}},
        "legend": {
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "x": 0,
            "font": {"size": 11},
        },
        "margin": {"l": 60, "r": 20, "t": 36, "b": 50},
    }
}


def _figure(traces: list[dict[str, Any]], height: int, **layout: Any) -> go.Figure:
    """One validated Figure built in one go (much faster than add_trace/update_layout calls)."""
    return go.Figure(data=traces, layout={"template": TEMPLATE, "height": height, **layout})


def _panels(n: int, titles: Sequence[str] = (), spacing: float = 0.12) -> dict[str, Any]:
    """Layout entries for `n` side-by-side panels: axes x/y, x2/y2, ... and panel titles."""
    width = (1.0 - spacing * (n - 1)) / n
    layout: dict[str, Any] = {"annotations": []}
    for i in range(n):
        suffix = "" if i == 0 else str(i + 1)
        left = i * (width + spacing)
        layout[f"xaxis{suffix}"] = {"domain": [left, left + width], "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}"}
        if i < len(titles):
            layout["annotations"].append(
                {
                    "text": titles[i],
                    "x": left + width / 2,
                    "y": 1.0,
                    "xref": "paper",
                    "yref": "paper",
                    "xanchor": "center",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"size": 12},
                }
            )
    return layout


def _axis_ref(i: int) -> dict[str, str]:
    suffix = "" if i == 0 else str(i + 1)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def _title(text: str) -> dict[str, Any]:
    return {"text": text}


def _text(value: object) -> str:
    """User-controlled text for Plotly's hover labels, which interpret a subset of HTML."""
    return html.escape(str(value), quote=False)


def _params_hover(params: dict[str, Any]) -> str:
    return "<br>".join(f"{_text(k)} = {_text(prose.fmt_number(v))}" for k, v in params.items())


def _metric_title(objective: Objective) -> str:
    arrow = "higher is better" if objective.maximize else "lower is better"
    return f"{_text(objective.name)} ({arrow})"


# ---------------------------------------------------------------- 2. Pareto front


def _mean_hover(objective: Objective, mean: float, sd: float | None) -> str:
    spread = "" if sd is None else f" ± {prose.fmt_metric(objective.name, sd)} SD"
    return f"{_text(objective.name)} {prose.fmt_metric(objective.name, mean)}{spread}"


def _error_bars(sds: list[tuple[float, ...] | None], index: int) -> dict[str, Any]:
    return {
        "type": "data",
        "visible": any(sd is not None for sd in sds),
        "array": [0.0 if sd is None else sd[index] for sd in sds],
        "thickness": 1,
        "width": 2,
    }


def pareto_figure(info: ParetoInfo) -> go.Figure:
    """Objective 0 against objective 1, one point per configuration at its mean over seeds
    (± SD where repeated): dominated ones faint, front joined, recommended one starred."""
    y_obj, x_obj = info.objectives[0], info.objectives[1]
    hover = [
        f"configuration of trial {num}, {prose.fmt_count(n, 'run')}<br>"
        f"{_mean_hover(y_obj, v[0], None if sd is None else sd[0])}<br>"
        f"{_mean_hover(x_obj, v[1], None if sd is None else sd[1])}<br>{_params_hover(p)}"
        for num, n, v, sd, p in zip(
            info.numbers, info.n, info.values, info.sd, info.params, strict=True
        )
    ]
    dominated = [i for i, on in enumerate(info.on_front) if not on]
    front = sorted((i for i, on in enumerate(info.on_front) if on), key=lambda i: info.values[i][1])
    traces: list[dict[str, Any]] = []
    for name, chosen, marker, line in (
        ("dominated configurations", dominated, {"color": DOMINATED_COLOUR, "size": 7}, None),
        (
            "Pareto front (means)",
            front,
            {"color": FRONT_COLOUR, "size": 9},
            {"color": FRONT_COLOUR, "width": 1.5, "shape": "hv"},
        ),
    ):
        traces.append(
            {
                "type": "scatter",
                "x": [info.values[i][1] for i in chosen],
                "y": [info.values[i][0] for i in chosen],
                "error_x": _error_bars([info.sd[i] for i in chosen], 1),
                "error_y": _error_bars([info.sd[i] for i in chosen], 0),
                "mode": "markers" if line is None else "lines+markers",
                "name": name,
                "marker": marker,
                **({"line": line} if line else {}),
                "hovertext": [hover[i] for i in chosen],
                "hoverinfo": "text",
            }
        )
    knee = [row for row in info.front if row.is_knee]
    if knee:
        traces.append(
            {
                "type": "scatter",
                "x": [knee[0].values[1]],
                "y": [knee[0].values[0]],
                "mode": "markers",
                "name": f"recommended (configuration of trial {knee[0].number})",
                "marker": {"color": "#111827", "size": 16, "symbol": "star"},
                "hoverinfo": "skip",
            }
        )
    return _figure(
        traces,
        420,
        xaxis={"title": _title(_metric_title(x_obj))},
        yaxis={"title": _title(_metric_title(y_obj))},
    )


# ---------------------------------------------------------------- 4. effects


def effect_figure(effect: ParamEffect, objectives: Sequence[Objective]) -> go.Figure:
    """Each objective against one parameter: configurations (means over their seeds) as
    points, best and median of those means as lines, sweep means ± SD where swept."""
    layout = _panels(len(objectives))
    group_x = [g.x for g in effect.groups]
    per = " per bin" if effect.binned else " per value"
    axis_type = "log" if effect.log_x else ("linear" if effect.numeric else "category")
    traces: list[dict[str, Any]] = []
    for i, objective in enumerate(objectives):
        first = i == 0
        ref = _axis_ref(i)
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
                "marker": {"color": DOMINATED_COLOUR, "size": 6},
                "hovertext": [
                    f"configuration of trial {num}, {prose.fmt_count(n, 'run')}"
                    for num, n in zip(effect.numbers, effect.n, strict=True)
                ],
                "hoverinfo": "text+y",
            },
            {
                "type": "scatter",
                **ref,
                "x": group_x,
                "y": [g.median[j] for g in effect.groups],
                "mode": "lines+markers",
                "name": "median" + per,
                "legendgroup": "median",
                "showlegend": first,
                "line": {"color": MEDIAN_COLOUR, "width": 2},
            },
            {
                "type": "scatter",
                **ref,
                "x": group_x,
                "y": [g.best[j] for g in effect.groups],
                "mode": "lines+markers",
                "name": "best" + per,
                "legendgroup": "best",
                "showlegend": first,
                "line": {"color": FRONT_COLOUR, "width": 2, "dash": "dot"},
            },
        ]
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
                    # n beside each sweep point: the PDF's static figures have no hover
                    "mode": "markers+text",
                    "text": [f"n={g.n}" for g in effect.sweep],
                    "textposition": "middle right",
                    "textfont": {"size": 9},
                    "hovertext": [
                        f"sweep value, {prose.fmt_count(g.n, 'run')}" for g in effect.sweep
                    ],
                    "hoverinfo": "text+y",
                    "name": "sweep: mean ± SD over seeds",
                    "legendgroup": "sweep",
                    "showlegend": first,
                    "marker": {"color": "#111827", "size": 8, "symbol": "diamond"},
                }
            )
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"].update(title=_title(_text(effect.name)), type=axis_type)
        if effect.numeric and not effect.binned:
            labels = [g.label for g in effect.groups]
            layout[f"xaxis{suffix}"].update(tickvals=group_x, ticktext=labels)
        layout[f"yaxis{suffix}"].update(title=_title(_metric_title(objective)))
    return _figure(traces, 340, **layout)


# ---------------------------------------------------------------- 5. bias and variance


def capacity_figure(axis: CapacityAxis) -> go.Figure:
    """Train and validation MSE against one capacity axis, and their gap."""
    layout = _panels(2, spacing=0.14)
    xs = [g.x for g in axis.groups]
    hover = [f"configuration of trial {n}" for n in axis.numbers]
    traces: list[dict[str, Any]] = []
    for name, colour, points, line in (
        ("train", TRAIN_COLOUR, axis.train_mse, [g.train_mse for g in axis.groups]),
        ("validation", VALIDATION_COLOUR, axis.val_mse, [g.val_mse for g in axis.groups]),
    ):
        traces += [
            {
                "type": "scatter",
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
                "x": xs,
                "y": line,
                "mode": "lines+markers",
                "name": name,
                "line": {"color": colour, "width": 2},
            },
        ]
    gaps = [v - t for v, t in zip(axis.val_mse, axis.train_mse, strict=True)]
    traces += [
        {
            "type": "scatter",
            **_axis_ref(1),
            "x": axis.xs,
            "y": gaps,
            "mode": "markers",
            "name": "gap (configurations)",
            "marker": {"color": GAP_COLOUR, "size": 5, "opacity": 0.3},
            "hovertext": hover,
            "hoverinfo": "text+y",
        },
        {
            "type": "scatter",
            **_axis_ref(1),
            "x": xs,
            "y": [g.gap for g in axis.groups],
            "mode": "lines+markers",
            "name": "gap",
            "line": {"color": GAP_COLOUR, "width": 2},
        },
    ]
    x_type = "log" if axis.log_x else "linear"
    for suffix, y_title in (("", "train and validation MSE"), ("2", "gap: validation - train")):
        layout[f"xaxis{suffix}"].update(title=_title(_text(axis.title)), type=x_type)
        layout[f"yaxis{suffix}"].update(title=_title(y_title))
    return _figure(traces, 340, **layout)


def learning_curves_figure(curves: Sequence[LearningCurve]) -> go.Figure:
    """Training loss and validation MSE per epoch, one colour per Pareto trial."""
    layout = _panels(2, spacing=0.14)
    traces: list[dict[str, Any]] = []
    for i, curve in enumerate(curves):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        for panel, ys in ((0, curve.loss), (1, curve.val_mse)):
            traces.append(
                {
                    "type": "scatter",
                    **_axis_ref(panel),
                    "x": curve.epochs,
                    "y": ys,
                    "mode": "lines+markers",
                    "name": f"trial {curve.number}",
                    "legendgroup": str(curve.number),
                    "showlegend": panel == 0,
                    "line": {"color": colour, "width": 1.5},
                    "marker": {"size": 4},
                }
            )
    for suffix, y_title in (("", "training loss"), ("2", "validation MSE")):
        layout[f"xaxis{suffix}"].update(title=_title("epoch"))
        layout[f"yaxis{suffix}"].update(title=_title(y_title))
    return _figure(traces, 360, **layout)


# ---------------------------------------------------------------- 6. importance


def importance_figure(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars of parameter importance, one panel per objective."""
    titles = [f"importance for {_text(i.objective.name)}" for i in info.per_objective]
    layout = _panels(len(info.per_objective), titles, spacing=0.2)
    traces = []
    for i, item in enumerate(info.per_objective):
        ordered = sorted(item.importances.items(), key=lambda kv: kv[1])
        traces.append(
            {
                "type": "bar",
                **_axis_ref(i),
                "orientation": "h",
                "x": [v for _, v in ordered],
                "y": [_text(k) for k, _ in ordered],
                "marker": {"color": SERIES_COLOURS[i % len(SERIES_COLOURS)]},
                "text": [f"{v:.2f}" for _, v in ordered],
                "textposition": "auto",
                "showlegend": False,
            }
        )
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"].update(title=_title("share of importance"), range=[0, 1])
    height = 120 + 28 * max((len(i.importances) for i in info.per_objective), default=1)
    return _figure(traces, max(height, 260), **layout)


# ---------------------------------------------------------------- 7. diagnostics


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    trace = {
        "type": "scatter",
        "x": info.numbers,
        "y": info.values,
        "mode": "lines+markers",
        "line": {"color": TRAIN_COLOUR, "shape": "hv"},
        "marker": {"size": 4},
        "name": "hypervolume",
    }
    return _figure(
        [trace],
        320,
        showlegend=False,
        xaxis={"title": _title("trial number")},
        yaxis={"title": _title("hypervolume of the configuration means so far")},
    )


def timeline_figure(bars: Sequence[TimelineBar]) -> go.Figure:
    """One bar per trial from start to end; lanes are workers when there are several."""
    workers = sorted({b.worker for b in bars})
    by_worker = len(workers) > 1
    traces = []
    for state, colour in STATE_COLOURS.items():
        chosen = [b for b in bars if b.state == state]
        if chosen:
            traces.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": state.lower(),
                    "base": [b.start_s for b in chosen],
                    "x": [max(b.end_s - b.start_s, 0.5) for b in chosen],
                    "y": [_text(b.worker) if by_worker else b.number for b in chosen],
                    "marker": {"color": colour, "line": {"width": 0}},
                    "hovertext": [f"trial {b.number} ({_text(b.worker)})" for b in chosen],
                    "hoverinfo": "text",
                }
            )
    lanes = len(workers) if by_worker else 8
    return _figure(
        traces,
        min(260 + 18 * lanes, 480),
        barmode="overlay",
        bargap=0.15,
        xaxis={"title": _title("seconds since the first trial started")},
        yaxis={
            "title": _title("worker" if by_worker else "trial number"),
            "type": "category" if by_worker else "linear",
            **({} if by_worker or len(bars) > 20 else {"dtick": 1}),
        },
    )


# ---------------------------------------------------------------- 8. latent space


def latent_figure(info: LatentInfo) -> go.Figure:
    assert info.coords is not None and info.labels is not None
    traces = []
    for digit in sorted(set(info.labels.tolist())):
        sel = info.labels == digit
        traces.append(
            {
                "type": "scattergl" if len(info.labels) > 5000 else "scatter",
                "x": info.coords[sel, 0],
                "y": info.coords[sel, 1],
                "mode": "markers",
                "name": str(digit),
                "marker": {"color": DIGIT_COLOURS[int(digit) % 10], "size": 5, "opacity": 0.75},
            }
        )
    pca = bool(info.explained)
    x_title = f"PC 1 ({100 * info.explained[0]:.1f} % of variance)" if pca else "z 1"
    y_title = f"PC 2 ({100 * info.explained[1]:.1f} % of variance)" if pca else "z 2"
    return _figure(
        traces,
        460,
        legend={
            "title": {"text": "digit"},
            "orientation": "v",
            "x": 1.02,
            "y": 1,
            "yanchor": "top",
        },
        xaxis={"title": _title(x_title)},
        yaxis={"title": _title(y_title)},
    )


# ---------------------------------------------------------------- all figures, by section


def build_figures(context: ReportContext) -> dict[str, list[FigureSpec]]:
    """Every figure of the report, keyed by the section that shows it (same order as there)."""
    figures: dict[str, list[FigureSpec]] = {
        key: []
        for key in ("pareto", "effects", "bias_variance", "importance", "diagnostics", "latent")
    }

    def add(section: str, key: str, caption: str, figure: go.Figure) -> None:
        figures[section].append(FigureSpec(key, caption, figure, int(figure.layout.height or 400)))

    pareto = context.pareto
    if len(pareto.objectives) == 2 and pareto.numbers:
        add(
            "pareto",
            "pareto-front",
            f"{pareto.objectives[0].name} against {pareto.objectives[1].name} for all "
            f"{len(pareto.numbers)} configurations ({pareto.n_trials} complete trials), each at "
            "its mean over seeds with ± SD bars where repeated; the Pareto front is joined, the "
            "recommended configuration starred.",
            pareto_figure(pareto),
        )
    _add_effects(add, context.effects)
    for axis in context.bias_variance.axes:
        add(
            "bias_variance",
            f"capacity-{axis.name}",
            f"Train and validation MSE and their gap against {axis.title} ({axis.source}).",
            capacity_figure(axis),
        )
    if context.bias_variance.curves:
        add(
            "bias_variance",
            "learning-curves",
            "Learning curves of one run per front configuration, spread along the front.",
            learning_curves_figure(context.bias_variance.curves),
        )
    if context.latent_use.points:
        add(
            "bias_variance",
            "rate-distortion",
            "Rate against distortion on test images: each trial's KL term (nats per image) "
            "against its ELBO reconstruction term, coloured by beta; one panel per loss, whose "
            "reconstruction terms have different units.",
            rate_distortion_figure(context.latent_use, TEMPLATE),
        )
    if context.importance.per_objective:
        add(
            "importance",
            "importance",
            "fANOVA importance of each parameter, computed for each objective separately.",
            importance_figure(context.importance),
        )
    _add_diagnostics(add, context.diagnostics)
    latent = context.latent
    if latent.coords is not None:
        add(
            "latent",
            "latent-space",
            f"Test-set latent means of trial {latent.number} ({latent.method}), coloured by digit.",
            latent_figure(latent),
        )
    return figures


def _add_effects(add: Any, effects: EffectsInfo) -> None:
    for index, effect in enumerate(effects.effects):
        shown = "bin" if effect.binned else "value"
        low, high = min(effect.n, default=1), max(effect.n, default=1)
        runs = f"{low}" if low == high else f"{low} to {high}"
        add(
            "effects",
            f"effect-{index}",  # not the name: keys become file names and HTML ids
            f"Objectives against {effect.name}: every configuration as a point at its mean over "
            f"its seeds ({runs} runs each), best and median of those means per {shown} as lines"
            + ("; sweep means with seed-to-seed SD as error bars and n." if effect.sweep else "."),
            effect_figure(effect, effects.objectives),
        )


def _add_diagnostics(add: Any, diagnostics: DiagnosticsInfo) -> None:
    if diagnostics.hypervolume is not None:
        add(
            "diagnostics",
            "hypervolume",
            "Hypervolume after each completed trial. "
            + diagnostics.hypervolume.basis
            + " "
            + diagnostics.hypervolume.reference_note,
            hypervolume_figure(diagnostics.hypervolume),
        )
    if diagnostics.timeline:
        add(
            "diagnostics",
            "timeline",
            "Trial timeline, coloured by final state.",
            timeline_figure(diagnostics.timeline),
        )
