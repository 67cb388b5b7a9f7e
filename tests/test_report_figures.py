"""The report's figures read cleanly, checked on the Plotly figure objects, not on pixels
(issue 19): the axis follows the parameter (categorical, numeric, log where the space is),
tick labels keep apart, titles fit their axis, lines join only a designed sweep, and the
sweep keeps its error bars."""

from __future__ import annotations

import math

import pytest

from search.report import report_context
from search.report.figure_style import panel_px, thin_ticks
from search.report.figures import build_figures
from search.report.static_images import IMAGE_WIDTH
from tests.report_fixtures import SEARCH_SPACE, build_study

CHAR_PX = 7.0  # a generous width of one character at the figures' 12-px font
MARGIN_PX = 90  # the template's top + bottom (or left + right) margin, with room for ticks


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    study = build_study(tmp_path_factory.mktemp("figures"), n_trials=24, n_pruned=3)
    context = report_context(study.study)
    return context, build_figures(context)


def _axes(layout: dict) -> dict[str, dict]:
    return {k: v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))}


def _length_px(name: str, axis: dict, layout: dict, width: int = IMAGE_WIDTH) -> float:
    domain = axis.get("domain") or [0, 1]
    if name.startswith("x"):
        return width * (domain[1] - domain[0]) - 20
    return (layout.get("height") or 400) * (domain[1] - domain[0]) - MARGIN_PX


def test_ticks_never_overprint_and_titles_fit(figures):
    _, by_section = figures
    checked_ticks = 0
    for spec in (s for specs in by_section.values() for s in specs):
        layout = spec.figure.to_plotly_json()["layout"]
        for name, axis in _axes(layout).items():
            title = (axis.get("title") or {}).get("text") or ""
            width = spec.width or IMAGE_WIDTH
            assert len(title) * CHAR_PX <= _length_px(name, axis, layout, width), (spec.key, title)
            ticks = axis.get("tickvals")
            if ticks is None:
                continue
            checked_ticks += 1
            labels = axis["ticktext"]
            assert len(ticks) == len(labels) <= 6, (spec.key, labels)
            log = axis.get("type") == "log"
            where = [math.log10(t) if log else t for t in ticks]
            span = where[-1] - where[0]
            pixels = _length_px(name, axis, layout, width)
            for i in range(1, len(ticks)):
                gap = (where[i] - where[i - 1]) / span if span else 1
                # the two half labels fit in the gap between their ticks
                room = gap * pixels
                need = CHAR_PX * (len(labels[i]) + len(labels[i - 1])) / 2
                assert need <= room, (spec.key, labels[i - 1], labels[i], room)
    assert checked_ticks >= 6


def test_axes_follow_the_parameter_and_lines_join_only_a_designed_sweep(figures):
    context, by_section = figures
    effects = {e.name: e for e in context.effects.effects}
    for index, spec in enumerate(by_section["effects"]):
        effect = context.effects.effects[index]
        layout = spec.figure.to_plotly_json()["layout"]
        x_type = layout["xaxis"]["type"]
        kind = SEARCH_SPACE[effect.name]["type"]
        if kind == "categorical":
            assert x_type == "category", effect.name
            assert layout["xaxis"]["categoryarray"] == ["bce", "mse"]
        elif SEARCH_SPACE[effect.name]["log"]:
            assert x_type == "log", effect.name
        else:
            assert x_type == "linear", effect.name
        for trace in spec.figure.data:
            if "lines" in (trace.mode or ""):
                assert trace.name.startswith("designed sweep"), (effect.name, trace.name)
                assert trace.error_y.visible and any(v > 0 for v in trace.error_y.array)
    assert effects["latent_dim"].sweep and effects["n_layers"].sweep
    swept = [
        s for s, e in zip(by_section["effects"], context.effects.effects, strict=True) if e.sweep
    ]
    assert all(any("lines" in (t.mode or "") for t in s.figure.data) for s in swept)


def test_thin_ticks_keeps_ends_and_drops_crowded_neighbours():
    assert thin_ticks([16, 17, 18, 19, 2, 8], log=False) == [2.0, 8.0, 16.0, 19.0]
    assert thin_ticks([0.3224, 0.3324, 0.391, 0.392, 1.0, 4.0], log=True) == [
        0.3224,
        1.0,
        4.0,
    ]
    assert thin_ticks([5], log=False) == [5.0]
    # with the axis's length, by the labels' widths: a k sweep keeps every value's tick (seen:
    # 2 dropped from 1, 2, 4, 6, 8, 10), crowded two-digit labels still do not overprint
    panel = panel_px(2)
    assert thin_ticks([1, 2, 4, 6, 8, 10], log=False, axis_px=panel) == [1, 2, 4, 6, 8, 10]
    assert thin_ticks([1, 2, 4, 6, 8, 10], log=False) == [1.0, 4.0, 6.0, 8.0, 10.0]
    assert thin_ticks([2, 8, 13, 16, 17, 18, 19, 23], log=False, axis_px=panel) == [
        2.0,
        8.0,
        13.0,
        16.0,
        18.0,
        23.0,
    ]


def test_captions_are_not_the_paragraphs_beside_them(figures):
    context, by_section = figures
    hv = context.diagnostics.hypervolume
    assert hv is not None
    caption = next(s.caption for s in by_section["diagnostics"] if s.key == "hypervolume")
    assert hv.basis not in caption and hv.reference_note not in caption
