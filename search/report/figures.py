"""Context -> Plotly figures: one small function per figure, each only draws what it is given.

The style (fonts, colours, template, panels, tick thinning) is `figure_style`'s; the figures of
one parameter or capacity axis against the objectives are `parameter_figures`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from search.report import figure_style as style
from search.report import prose
from search.report.figure_style import FigureSpec
from search.report.latent_use import rate_distortion_caption, rate_distortion_figure
from search.report.parameter_figures import capacity_figure, effect_figure, pooled_groups
from search.report.sections import (
    DiagnosticsInfo,
    EffectsInfo,
    HypervolumeInfo,
    ImportanceInfo,
    LatentInfo,
    LearningCurve,
    ParetoInfo,
    ReportContext,
    TimelineBar,
)
from search.report.trials import Objective

__all__ = ["FigureSpec", "build_figures", "capacity_figure", "effect_figure"]

# ---------------------------------------------------------------- 2. Pareto front


def _mean_hover(objective: Objective, mean: float, sd: float | None) -> str:
    spread = "" if sd is None else f" ± {prose.fmt_metric(objective.name, sd)} SD"
    return f"{style.text(objective.name)} {prose.fmt_metric(objective.name, mean)}{spread}"


def _error_bars(sds: list[tuple[float, ...] | None], index: int) -> dict[str, Any]:
    return {
        "type": "data",
        "visible": any(sd is not None for sd in sds),
        "array": [0.0 if sd is None else sd[index] for sd in sds],
        "thickness": 1,
        "width": 2,
    }


def pareto_figure(info: ParetoInfo, height: int = 420) -> go.Figure:
    """Objective 0 against objective 1, one point per configuration at its mean over seeds
    (± SD where repeated): dominated ones faint, front joined, recommended one starred."""
    y_obj, x_obj = info.objectives[0], info.objectives[1]
    hover = [
        f"configuration of trial {num}, {prose.fmt_count(n, 'run')}<br>"
        f"{_mean_hover(y_obj, v[0], None if sd is None else sd[0])}<br>"
        f"{_mean_hover(x_obj, v[1], None if sd is None else sd[1])}<br>{style.params_hover(p)}"
        for num, n, v, sd, p in zip(
            info.numbers, info.n, info.values, info.sd, info.params, strict=True
        )
    ]
    dominated = [i for i, on in enumerate(info.on_front) if not on]
    front = sorted((i for i, on in enumerate(info.on_front) if on), key=lambda i: info.values[i][1])
    traces: list[dict[str, Any]] = []
    for name, chosen, marker, line in (
        ("dominated configurations", dominated, {"color": style.DOMINATED_COLOUR, "size": 7}, None),
        (
            "Pareto front (means)",
            front,
            {"color": style.FRONT_COLOUR, "size": 9},
            {"color": style.FRONT_COLOUR, "width": 1.5, "shape": "hv"},
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
    return style.figure(
        traces,
        height,
        xaxis={"title": style.title(style.metric_title(x_obj))},
        yaxis={"title": style.title(style.metric_title(y_obj))},
    )


# ---------------------------------------------------------------- 5. learning curves


def learning_curves_figure(curves: Sequence[LearningCurve]) -> go.Figure:
    """Training loss and validation MSE per epoch, one colour per Pareto trial."""
    layout = style.panels(2, spacing=0.14)
    traces: list[dict[str, Any]] = []
    for i, curve in enumerate(curves):
        colour = style.SERIES_COLOURS[i % len(style.SERIES_COLOURS)]
        for panel, ys in ((0, curve.loss), (1, curve.val_mse)):
            traces.append(
                {
                    "type": "scatter",
                    **style.axis_ref(panel),
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
        layout[f"xaxis{suffix}"].update(title=style.title("epoch"))
        layout[f"yaxis{suffix}"].update(title=style.title(y_title))
    return style.figure(traces, 360, **layout)


# ---------------------------------------------------------------- 6. importance


def importance_figure(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars of parameter importance, one panel per objective."""
    titles = [f"importance for {style.text(i.objective.name)}" for i in info.per_objective]
    layout = style.panels(len(info.per_objective), titles, spacing=0.2)
    traces = []
    for i, item in enumerate(info.per_objective):
        ordered = sorted(item.importances.items(), key=lambda kv: kv[1])
        traces.append(
            {
                "type": "bar",
                **style.axis_ref(i),
                "orientation": "h",
                "x": [v for _, v in ordered],
                "y": [style.text(k) for k, _ in ordered],
                "marker": {"color": style.SERIES_COLOURS[i % len(style.SERIES_COLOURS)]},
                "text": [f"{v:.2f}" for _, v in ordered],
                "textposition": "auto",
                "showlegend": False,
            }
        )
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"].update(title=style.title("share of importance"), range=[0, 1])
    height = 120 + 28 * max((len(i.importances) for i in info.per_objective), default=1)
    return style.figure(traces, max(height, 260), **layout)


# ---------------------------------------------------------------- 7. diagnostics


def hypervolume_figure(info: HypervolumeInfo, band: tuple[float, float] | None = None) -> go.Figure:
    """Hypervolume after each completed trial, over the seed-noise band where it is known."""
    shapes = []
    if band is not None:
        shapes.append(
            {
                "type": "rect",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": band[0],
                "y1": band[1],
                "fillcolor": "rgba(15, 118, 110, 0.12)",
                "line": {"width": 0},
                "layer": "below",
            }
        )
    trace = {
        "type": "scatter",
        "x": info.numbers,
        "y": info.values,
        "mode": "lines+markers",
        "line": {"color": style.TRAIN_COLOUR, "shape": "hv"},
        "marker": {"size": 4},
        "name": "hypervolume",
    }
    return style.figure(
        [trace],
        320,
        showlegend=False,
        shapes=shapes,
        xaxis={"title": style.title("trial number")},
        # short: a long title is clipped by the figure's height; the caption says the rest
        yaxis={"title": style.title("hypervolume")},
    )


def timeline_figure(bars: Sequence[TimelineBar]) -> go.Figure:
    """One bar per trial from start to end; lanes are workers when there are several."""
    workers = sorted({b.worker for b in bars})
    by_worker = len(workers) > 1
    traces = []
    for state, colour in style.STATE_COLOURS.items():
        chosen = [b for b in bars if b.state == state]
        if chosen:
            traces.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": state.lower(),
                    "base": [b.start_s for b in chosen],
                    "x": [max(b.end_s - b.start_s, 0.5) for b in chosen],
                    "y": [style.text(b.worker) if by_worker else b.number for b in chosen],
                    "marker": {"color": colour, "line": {"width": 0}},
                    "hovertext": [f"trial {b.number} ({style.text(b.worker)})" for b in chosen],
                    "hoverinfo": "text",
                }
            )
    lanes = len(workers) if by_worker else 8
    return style.figure(
        traces,
        min(260 + 18 * lanes, 480),
        barmode="overlay",
        bargap=0.15,
        xaxis={"title": style.title("seconds since the first trial started")},
        yaxis={
            "title": style.title("worker" if by_worker else "trial number"),
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
                "marker": {
                    "color": style.DIGIT_COLOURS[int(digit) % 10],
                    "size": 5,
                    "opacity": 0.75,
                },
            }
        )
    pca = bool(info.explained)
    x_title = f"PC 1 ({100 * info.explained[0]:.1f} % of variance)" if pca else "z 1"
    y_title = f"PC 2 ({100 * info.explained[1]:.1f} % of variance)" if pca else "z 2"
    return style.figure(
        traces,
        460,
        legend={
            "title": {"text": "digit"},
            "orientation": "v",
            "x": 1.02,
            "y": 1,
            "yanchor": "top",
        },
        xaxis={"title": style.title(x_title)},
        yaxis={"title": style.title(y_title)},
    )


# ---------------------------------------------------------------- all figures, by section


def build_figures(context: ReportContext) -> dict[str, list[FigureSpec]]:
    """Every figure of the report, keyed by the section that shows it (same order as there)."""
    figures: dict[str, list[FigureSpec]] = {
        key: []
        for key in (
            "answer",
            "pareto",
            "effects",
            "bias_variance",
            "importance",
            "diagnostics",
            "latent",
        )
    }

    def add(
        section: str, key: str, caption: str, figure: go.Figure, width: int | None = None
    ) -> None:
        height = int(figure.layout.height or 400)
        figures[section].append(FigureSpec(key, caption, figure, height, width))

    pareto = context.pareto
    if len(pareto.objectives) == 2 and pareto.numbers:
        add(  # on page one; section 2 refers to it
            "answer",
            "pareto-front",
            f"{pareto.objectives[0].name} against {pareto.objectives[1].name} for all "
            f"{len(pareto.numbers)} configurations ({pareto.n_trials} complete trials), each at "
            "its mean over seeds with ± SD bars where repeated; the Pareto front is joined, the "
            "recommended configuration starred.",
            pareto_figure(pareto, height=360),
            width=style.ANSWER_FIGURE_WIDTH_PX,
        )
    _add_effects(add, context.effects)
    for axis in context.bias_variance.axes:
        if len(axis.groups) < 2:
            continue  # one value: the section says so, a chart of one point would not
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
            rate_distortion_caption(context.latent_use),
            rate_distortion_figure(context.latent_use, style.TEMPLATE),
        )
    if context.importance.per_objective:
        add(
            "importance",
            "importance",
            "fANOVA importance of each parameter, computed for each objective separately.",
            importance_figure(context.importance),
        )
    _add_diagnostics(add, context.diagnostics, context.trust.band if context.trust else None)
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
    varied = len(effects.effects) > 1  # else the one parameter with a chart is all that varies
    for index, effect in enumerate(effects.effects):
        shown = "bin" if effect.binned else "value"
        low, high = min(effect.n, default=1), max(effect.n, default=1)
        runs = f"{low}" if low == high else f"{low} to {high}"
        add(
            "effects",
            f"effect-{index}",  # not the name: keys become file names and HTML ids
            f"Objectives against {effect.name}: every configuration as a point at its mean over "
            f"its seeds ({runs} runs each)"
            + (
                f" and, where two or more configurations share a {shown}, the median of their "
                "means as a dash"
                if pooled_groups(effect)
                else ""
            )
            + ("; points with other parameters differing are not joined" if varied else "")
            + (
                "; the designed sweep's means with seed-to-seed SD as error bars and n, joined."
                if effect.sweep
                else "."
            ),
            effect_figure(effect, effects.objectives),
        )


def _add_diagnostics(
    add: Any, diagnostics: DiagnosticsInfo, band: tuple[float, float] | None
) -> None:
    if diagnostics.hypervolume is not None:
        add(
            "diagnostics",
            "hypervolume",
            "Hypervolume of the configuration means after each completed trial"
            + ("; shaded: the seed-noise band of the final front." if band else "."),
            hypervolume_figure(diagnostics.hypervolume, band),
        )
    if diagnostics.timeline:
        add(
            "diagnostics",
            "timeline",
            "Trial timeline, coloured by final state.",
            timeline_figure(diagnostics.timeline),
        )
