"""The study explains itself in optuna-dashboard: a Markdown note and the report's key figures.

optuna-dashboard 0.21 shows a study note (`save_note`) and Plotly figures
(`save_plotly_graph_object`), both kept in the study's system attrs. The note is rewritten as
a new version of the same note; each figure is saved under a fixed id (`vae-search-...`), which
the dashboard overwrites in place. So writing the story again on a resumed study replaces it,
never adds a second copy.

Everything comes from the report's context (the same recommendation, front and numbers as
the HTML/PDF report, means over seeds) and the report's own Plotly figures.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go

from search.records import DASHBOARD_FIGURE_PREFIX
from search.report.figures import FigureSpec
from search.report.sections import ReportContext
from search.terminal import bounded

FIGURE_ID_PREFIX = DASHBOARD_FIGURE_PREFIX
# The report figures the dashboard shows: the front with confirmed means, the hypervolume
# history, and every one-factor sweep chart (effect figures of swept parameters).
STORY_FIGURES = ("pareto-front", "hypervolume")


def _fmt(value: Any) -> str:
    """A value as the report prints it: yes/no for flags, never Python's True/False; a
    stored string as literal Markdown text."""
    from search.report.prose import fmt_number

    return md_text(value) if isinstance(value, str) else fmt_number(value)


def _one_line(value: Any) -> str:
    """A stored string bounded, each line break or other control character a space."""
    return "".join(ch if ch.isprintable() else " " for ch in bounded(str(value)))


def md_text(value: Any) -> str:
    """A stored string as literal Markdown text: one line, every ASCII punctuation character
    backslash-escaped (CommonMark allows it for each), so no study name, parameter value or
    data note can start a heading, break a table, or make a link, an image or HTML."""
    return "".join("\\" + ch if ch in string.punctuation else ch for ch in _one_line(value))


def md_code(value: Any, in_table: bool = False) -> str:
    """A stored string as one inline code span: fenced by more backticks than any run inside
    (a backtick in it cannot close the span); in a table cell, '|' escaped as GFM needs."""
    text = _one_line(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence} {text} {fence}"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{md_text(k)}={_fmt(v)}" for k, v in params.items())


def _plain_params(params: Mapping[str, Any]) -> str:
    """Parameters for a code span, where backslash escapes would show."""
    from search.report.prose import fmt_number

    return ", ".join(f"{k}={v if isinstance(v, str) else fmt_number(v)}" for k, v in params.items())


def _mean_sd(mean: float, sd: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


def _digits(name: str) -> int:
    return 5 if name.upper() == "MSE" else 4


def story_markdown(context: ReportContext, report_paths: Mapping[str, Path]) -> str:
    """The study note: recommendation, front table, data and budget, where the report is."""
    summary = context.summary
    objectives = summary.objectives
    lines = [f"## vae-search: {md_text(context.study_name)}", ""]
    rec = summary.recommendation
    if rec is None:
        lines += ["No completed trial yet: nothing to recommend.", ""]
    else:
        runs = "1 run" if len(rec.numbers) == 1 else f"mean of {len(rec.numbers)} runs"
        lines += [
            f"**Recommended configuration** (trial {rec.number}; {runs}): "
            + md_code(_plain_params(rec.params)),
            "",
            "| metric | validation | test |",
            "|---|---|---|",
        ]
        for o in objectives:
            test = rec.test_values.get(o.name)
            test_sd = rec.test_sd.get(o.name)
            lines.append(
                f"| {md_text(o.name)} ({'higher' if o.maximize else 'lower'} is better) "
                f"| {_mean_sd(rec.values[o.name], rec.sd.get(o.name), _digits(o.name))} "
                f"| {'—' if test is None else _mean_sd(test, test_sd, _digits(o.name))} |"
            )
        lines += [
            "",
            f"Chosen as {md_text(rec.method)}. {md_text(rec.evidence)}"
            + (f" {md_text(rec.ties_text)}" if rec.n > 1 and rec.ties_text else ""),
            "",
        ]
    front = context.pareto.front
    if front:
        names = [o.name for o in context.pareto.objectives]
        lines += [
            f"### Pareto front ({len(front)} configuration{'' if len(front) == 1 else 's'}, "
            "means over seeds)",
            "",
            "| trial | runs | " + " | ".join(md_text(n) for n in names) + " | parameters |",
            "|---|---|" + "---|" * len(names) + "---|",
        ]
        for row in front:
            cells = [
                _mean_sd(row.values[i], None if row.sd is None else row.sd[i], _digits(names[i]))
                for i in range(len(names))
            ]
            star = " ★" if rec is not None and row.number == rec.number else ""
            lines.append(
                f"| {row.number}{star} | {len(row.numbers)} | "
                + " | ".join(cells)
                + f" | {_params(row.params)} |"  # escaped, '|' too
            )
        lines.append("")
    lines += ["### Data and budget", ""]
    data = summary.data
    if data is not None:
        counts = ", ".join(f"{k} {v:,}" for k, v in data.counts.items() if v)
        note = f" ({md_text(data.note)})" if data.note else ""
        lines.append(f"- Data: {md_text(data.source)}{note}")
        lines.append(f"- Images: {counts}")
    budget = summary.budget
    settings = budget.settings
    if summary.settings_items:  # validation_subset explained beside the split's size
        lines.append("- Budget per trial: " + ", ".join(summary.settings_items))
    elif settings:
        lines.append(
            "- Budget per trial: " + ", ".join(f"{k} {_fmt(v)}" for k, v in settings.items())
        )
    states = ", ".join(f"{k.lower()} {v}" for k, v in budget.states.items() if v)
    lines.append(f"- Trials: {budget.n_trials} ({states})")
    lines += _importance_lines(context)
    lines += ["", "### Report", ""]
    if report_paths:
        for fmt, path in report_paths.items():
            lines.append(f"- {fmt.upper()}: {md_code(Path(path).resolve())}")
    else:
        lines.append(
            "- Not written in this run: "
            + md_code(f"python -m search report --study {context.study_name}")
        )
    lines.append(
        "- Figures of this study (the report's Pareto front, hypervolume and sweeps) are on "
        "this study's main page, in the grid of plots after the dashboard's own history and "
        "Pareto-front plots; the full report is in the files above."
    )
    return "\n".join(lines) + "\n"


def _importance_lines(context: ReportContext) -> list[str]:
    """The report's importance per objective, and why the dashboard's own panel, a few
    centimetres away, may rank the parameters differently."""
    importance = context.importance
    ranked = [
        f"{md_text(item.objective.name)}: "
        + ", ".join(
            f"{md_text(name)} {share:.2f}"
            for name, share in sorted(item.importances.items(), key=lambda kv: -kv[1])[:3]
        )
        for item in importance.per_objective
        if item.importances
    ]
    if not ranked:
        return []
    lines = ["", "### Parameter importance", ""]
    lines.append("- The report's fANOVA, per objective (top 3): " + "; ".join(ranked) + ".")
    if importance.dashboard_sentence:
        lines.append(f"- {md_text(importance.dashboard_sentence)}")
    return lines


def story_figures(figures: Mapping[str, list[FigureSpec]]) -> dict[str, go.Figure]:
    """Dashboard figure id -> the report's figure, for the front, hypervolume and sweeps."""
    chosen: dict[str, go.Figure] = {}
    for specs in figures.values():
        for spec in specs:
            if spec.key in STORY_FIGURES or spec.key.startswith("sweep-"):
                chosen[FIGURE_ID_PREFIX + spec.key] = spec.figure
    return chosen


def sweep_figure_keys(context: ReportContext) -> dict[str, str]:
    """Effect figure key -> swept parameter name, for the effects that hold a sweep."""
    return {
        f"effect-{i}": effect.name
        for i, effect in enumerate(context.effects.effects)
        if effect.sweep
    }


def write_dashboard_story(
    study: optuna.Study,
    context: ReportContext,
    figures: Mapping[str, list[FigureSpec]],
    report_paths: Mapping[str, Path],
) -> list[str]:
    """Save the note and the figures into the study (replacing earlier ones); return the ids."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    save_note(study, story_markdown(context, report_paths))
    sweeps = sweep_figure_keys(context)
    renamed = {
        section: [
            FigureSpec(f"sweep-{sweeps[s.key]}", s.caption, s.figure, s.height)
            if s.key in sweeps
            else s
            for s in specs
        ]
        for section, specs in figures.items()
    }
    ids = []
    for graph_id, figure in story_figures(renamed).items():
        ids.append(save_plotly_graph_object(study, figure, graph_object_id=graph_id))
    return ids
