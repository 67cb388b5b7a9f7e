"""The report's figure style, shared by every figure module: fonts, colours, a small Plotly
template, side-by-side panels, escaped text and tick thinning (so tick labels never overprint).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from search.report import prose
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
    # the static image's width in CSS px, where the figure is shown narrower than the page
    # (page one's front, beside the grid): drawn at FIGURE_WIDTH_PX and shrunk to half the
    # page, its labels would print at 6 px
    width: int | None = None


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


def figure(traces: list[dict[str, Any]], height: int, **layout: Any) -> go.Figure:
    """One validated Figure built in one go (much faster than add_trace/update_layout calls)."""
    return go.Figure(data=traces, layout={"template": TEMPLATE, "height": height, **layout})


def panels(n: int, titles: Sequence[str] = (), spacing: float = 0.12) -> dict[str, Any]:
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


def axis_ref(i: int) -> dict[str, str]:
    suffix = "" if i == 0 else str(i + 1)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def title(text: str) -> dict[str, Any]:
    return {"text": text}


def text(value: object) -> str:
    """User-controlled text for Plotly's hover labels, which interpret a subset of HTML."""
    return html.escape(str(value), quote=False)


def params_hover(params: dict[str, Any]) -> str:
    return "<br>".join(f"{text(k)} = {text(prose.fmt_number(v))}" for k, v in params.items())


def metric_title(objective: Objective) -> str:
    arrow = "higher is better" if objective.maximize else "lower is better"
    return f"{text(objective.name)} ({arrow})"


# A tick label needs about this share of its axis to stay clear of its neighbours (the rule
# when the axis's length is not known).
MIN_TICK_GAP = 0.16
# Page one's front figure, shown in about half the page's width beside the grid.
ANSWER_FIGURE_WIDTH_PX = 440
# The static figures' width (static_images.IMAGE_WIDTH) less the template's left and right
# margins: the length, in CSS px, of a plot spanning the whole figure.
FIGURE_WIDTH_PX = 760
PLOT_WIDTH_PX = FIGURE_WIDTH_PX - 80
# A digit of the 12-px tick font is about 7.6 px wide (DejaVu Sans); labels keep this apart.
TICK_CHAR_PX = 8.0
TICK_PAD_PX = 8.0


def panel_px(n: int, spacing: float = 0.12) -> float:
    """The x axis length in px of one of `n` side-by-side `panels`."""
    return PLOT_WIDTH_PX * (1.0 - spacing * (n - 1)) / n


def thin_ticks(
    values: Sequence[float],
    log: bool,
    limit: int = 6,
    axis_px: float | None = None,
    label: Callable[[float], str] | None = None,
) -> list[float]:
    """Of the sorted distinct `values`, those that can carry a tick label without touching the
    previous one, the first and last kept, at most `limit`. With the axis's length `axis_px`,
    two neighbours need the room their two half labels take (so 1, 2, 4, 6, 8, 10 all keep
    their ticks, and 16, 17, 18, 19 do not); without it, MIN_TICK_GAP of the axis (in log space
    on a log axis)."""
    distinct = sorted({float(v) for v in values if not log or v > 0})
    if len(distinct) <= 2:
        return distinct

    def where(v: float) -> float:
        return math.log10(v) if log else v

    span = where(distinct[-1]) - where(distinct[0])
    if span <= 0:
        return distinct[:1]
    text = label or tick_label

    def apart(a: float, b: float) -> bool:
        if axis_px is None:
            return where(b) - where(a) >= max(MIN_TICK_GAP, 1 / limit) * span
        room = (where(b) - where(a)) / span * axis_px
        return room >= TICK_CHAR_PX * (len(text(a)) + len(text(b))) / 2 + TICK_PAD_PX

    kept = [distinct[0]]
    for value in distinct[1:-1]:
        if apart(kept[-1], value) and apart(value, distinct[-1]):
            kept.append(value)
    kept.append(distinct[-1])
    if len(kept) > limit and axis_px is not None:
        return thin_ticks(values, log, limit)
    return kept


def tick_label(value: float) -> str:
    """A tick label: whole numbers as they are (with k/M when large), others to 3 digits."""
    if float(value).is_integer():
        return prose.fmt_number(int(value))
    return f"{value:.3g}"
