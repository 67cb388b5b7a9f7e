"""Context + figures -> Jinja2 -> one self-contained HTML file, and the same -> WeasyPrint PDF.

The two renderings share every template and differ only in how a figure is embedded: the HTML
gets the figure's JSON and plotly.js (inlined once), the PDF a PNG written by kaleido.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import plotly.offline

from search.report import prose
from search.report.figures import FigureSpec
from search.report.sections import ReportContext
from search.report.static_images import KaleidoSession

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "report_templates"

PLOTLY_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


@dataclass(frozen=True)
class Section:
    """One numbered section: its anchor id, heading and partial template."""

    id: str
    title: str
    template: str


ALL_SECTIONS = (
    Section("summary", "Summary", "sections/summary.html.j2"),
    Section("pareto", "Pareto front", "sections/pareto.html.j2"),
    Section("reconstructions", "Reconstructions", "sections/reconstructions.html.j2"),
    Section("effects", "Effect of each hyperparameter", "sections/effects.html.j2"),
    Section("bias-variance", "Bias and variance", "sections/bias_variance.html.j2"),
    Section("importance", "Parameter importance", "sections/importance.html.j2"),
    Section("diagnostics", "Search diagnostics", "sections/diagnostics.html.j2"),
    Section("latent", "Latent space", "sections/latent.html.j2"),
    Section("reproducibility", "Reproducibility", "sections/reproducibility.html.j2"),
)
# Without a complete trial only these sections have anything to show.
SECTIONS_WITHOUT_RESULTS = ("summary", "diagnostics", "reproducibility")


def sections_for(context: ReportContext) -> list[Section]:
    if context.n_complete:
        return list(ALL_SECTIONS)
    return [s for s in ALL_SECTIONS if s.id in SECTIONS_WITHOUT_RESULTS]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_json(spec: FigureSpec) -> str:
    """The figure as JSON that is safe inside a <script> element (no `<` at all)."""
    return spec.figure.to_json(validate=False).replace("<", "\\u003c")


def with_commands(sentence: str) -> markupsafe.Markup:
    """A sentence as HTML, each `command` in it as code that wraps only at its spaces (a
    browser or WeasyPrint would otherwise break "--sweep" after its hyphens)."""
    parts = str(sentence).split("`")
    html = []
    for i, part in enumerate(parts):
        if i % 2 and i < len(parts) - 1:
            words = " ".join(
                f'<span class="word">{markupsafe.escape(w)}</span>' for w in part.split(" ")
            )
            html.append(f'<code class="command">{words}</code>')
        else:
            html.append(str(markupsafe.escape(part if i % 2 == 0 else "`" + part)))
    return markupsafe.Markup("".join(html))


# A path segment longer than this may still break anywhere (it could not fit a table cell).
LONGEST_UNBROKEN_SEGMENT = 24


def path_breaks(value: object) -> markupsafe.Markup:
    """A path or storage URL as HTML that wraps after its slashes, not at its hyphens
    ("mnist-" / "vae.db" was seen in the reproducibility table)."""
    html = []
    for piece in re.split(r"(?<=/)(?=[^/])", str(value)):  # after each run of slashes
        text = markupsafe.escape(piece)
        if len(piece) <= LONGEST_UNBROKEN_SEGMENT:
            html.append(f'<span class="word">{text}</span>')
        else:
            html.append(str(text))
    return markupsafe.Markup("<wbr>".join(html))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        metric=lambda value, name: prose.fmt_metric(name, value),
        mse=prose.fmt_mse,
        number=prose.fmt_number,
        duration=prose.fmt_duration,
        data_uri=data_uri,
        prose=with_commands,
        path=path_breaks,
    )
    return env


def render_html_text(
    context: ReportContext,
    figures: dict[str, list[FigureSpec]],
    medium: str,
    images: dict[str, str] | None = None,
) -> str:
    """The report page for `medium` "html" (interactive figures) or "pdf" (`images`: key -> URL)."""
    plotly_js = ""
    if medium == "html":
        plotly_js = plotly.offline.get_plotlyjs()
        if "</script" in plotly_js.lower():  # would end the inline <script> early
            raise RuntimeError("this plotly.js cannot be inlined: it contains '</script'")
    template = environment().get_template("report.html.j2")
    return template.render(
        ctx=context,
        figures=figures,
        sections=sections_for(context),
        medium=medium,
        images=images or {},
        figure_json=figure_json,
        plotly_js=plotly_js,
        plotly_config=PLOTLY_CONFIG,
    )


def _write_atomically(path: Path, write: Any) -> None:
    """Write through a temporary sibling, so a failure never leaves a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # created by `write`: umask applies
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_html(context: ReportContext, figures: dict[str, list[FigureSpec]], path: Path) -> Path:
    text = render_html_text(context, figures, "html")
    _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _weasyprint_warnings() -> Iterator[list[str]]:
    logger = logging.getLogger("weasyprint")
    collector = _WarningCollector()
    logger.addHandler(collector)
    try:
        yield collector.messages
    finally:
        logger.removeHandler(collector)


def write_pdf(
    context: ReportContext,
    figures: dict[str, list[FigureSpec]],
    path: Path,
    session: KaleidoSession,
) -> Path:
    """Render static figures with kaleido, then the page with WeasyPrint (local files only)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    all_figures = [spec for specs in figures.values() for spec in specs]
    with tempfile.TemporaryDirectory(prefix="vae-search-figures-") as tmp:
        pngs = session.write_pngs(all_figures, Path(tmp))
        text = render_html_text(context, figures, "pdf", {k: p.as_uri() for k, p in pngs.items()})
        document = HTML(
            string=text,
            base_url=tmp,
            url_fetcher=URLFetcher(allowed_protocols=("file", "data")),
        )
        with _weasyprint_warnings() as messages:
            rendered = document.render()
        failed = [m for m in messages if "Failed to load" in m or "Error" in m]
        if failed:
            raise RuntimeError("WeasyPrint could not load part of the report: " + "; ".join(failed))
        _write_atomically(path, lambda target: rendered.write_pdf(target))
    return path
