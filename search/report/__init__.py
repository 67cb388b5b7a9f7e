"""The study report: study -> context (plain data) -> Plotly figures -> Jinja2 -> HTML and PDF.

`write_report` is the one entry point (the CLI's `report` command and the end of `run`). It
needs no TensorFlow: everything comes from the study's records and its stored artifacts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import optuna

from search.dashboard_story import write_dashboard_story
from search.errors import UsageError
from search.paths import study_artifacts_dir
from search.records import study_attrs
from search.report.artifacts import ArtifactReader
from search.report.context import build_context
from search.report.diagnostics import importance_info
from search.report.figures import build_figures
from search.report.render import write_html, write_pdf
from search.report.sections import ReportContext
from search.report.static_images import KaleidoSession, describe_error
from search.report.trials import read_study

FORMATS = ("html", "pdf")
# Libraries that log every step at INFO, some of it after the report is done (a browser's
# temporary folder removed on garbage collection): a CLI logging at INFO would print it all.
# Their warnings still show; a level someone set on purpose is left alone.
CHATTY_LOGGERS = ("kaleido", "choreographer", "logistro", "weasyprint", "fontTools")
for _name in CHATTY_LOGGERS:
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

__all__ = [
    "FORMATS",
    "ReportContext",
    "report_context",
    "write_report",
    "write_story_without_report",
]


def _formats(formats: Sequence[str] | str) -> list[str]:
    items = [formats] if isinstance(formats, str) else list(formats)
    wanted = [f.strip().lower() for item in items for f in item.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(FORMATS))
    if unknown:
        raise UsageError(
            f"unknown report format {', '.join(unknown)}: choose from {', '.join(FORMATS)}"
        )
    if not wanted:
        raise UsageError(f"no report format given: choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in wanted]


def _artifact_dir(study: optuna.Study, artifact_store_dir: Path | None) -> Path | None:
    if artifact_store_dir is not None:
        return Path(artifact_store_dir)
    return study_artifacts_dir(study_attrs(study))


def report_context(study: optuna.Study, artifact_store_dir: Path | None = None) -> ReportContext:
    """The report's plain data for `study`, for the templates; reads artifacts, draws nothing."""
    records = read_study(study)
    reader = ArtifactReader(_artifact_dir(study, artifact_store_dir))
    return build_context(records, reader, importance_info(study, records), datetime.now(UTC))


def write_report(
    study: optuna.Study,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    artifact_store_dir: Path | None = None,
) -> dict[str, Path]:
    """Write report.html / report.pdf into out_dir; return {format: path}.

    The artifact store defaults to the study's `artifacts_dir` user attr. The HTML is written
    before the PDF is attempted, so it survives a PDF failure. Raises `UsageError` for an
    unknown format or when no Chrome/Chromium is available for the PDF's static figures.
    """
    wanted = _formats(formats)
    out_dir = Path(out_dir)
    session: KaleidoSession | None = None
    no_browser: UsageError | None = None
    if "pdf" in wanted:
        try:
            session = KaleidoSession()  # Chromium starts now, while the HTML is being made
        except UsageError as error:
            no_browser = error  # raised after the HTML is written
    try:
        context = report_context(study, artifact_store_dir)
        figures = build_figures(context)
        # The dashboard tells the same story (note + key figures), pointing at these files.
        try:
            write_dashboard_story(
                study, context, figures, {fmt: out_dir / f"report.{fmt}" for fmt in wanted}
            )
        except optuna.exceptions.StorageInternalError as error:
            # A storage this user may read but not write (a read-only database role): the
            # report is still wanted, only the dashboard stays without the note.
            logging.getLogger(__name__).warning("dashboard note not written: %s", error)
        written: dict[str, Path] = {}
        # An older PDF goes before the new HTML is written: whatever stops this (a failed
        # PDF step, a signal, a kill), the PDF left beside report.html is never an older one.
        older_pdf = _remove_older(out_dir / "report.pdf") if "pdf" in wanted else None
        if "html" in wanted:
            written["html"] = write_html(context, figures, out_dir / "report.html")
        if "pdf" in wanted:
            try:
                if no_browser is not None:
                    raise no_browser
                assert session is not None
                written["pdf"] = write_pdf(context, figures, out_dir / "report.pdf", session)
            except Exception as error:
                raise _pdf_not_written(error, older_pdf, written.get("html")) from None
        return written
    finally:
        if session is not None:
            session.close()


def _remove_older(pdf: Path) -> str | None:
    """Remove an older report.pdf; what to say of it if the new one is not written."""
    try:
        pdf.unlink()
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"the older {pdf} is stale and could not be removed ({error.strerror})"
    return f"the older {pdf} was removed, as it showed the study as it was then"


def _pdf_not_written(error: Exception, older_pdf: str | None, html: Path | None) -> UsageError:
    """One line for a failed PDF step, saying what became of an older report.pdf."""
    if isinstance(error, UsageError):
        reason = str(error)
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror + (f": {error.filename}" if error.filename else "")
    else:
        reason = f"{type(error).__name__}: {describe_error(error)}"
    parts = [f"the PDF was not written ({reason})"]
    if older_pdf is not None:
        parts.append(older_pdf)
    if html is not None:
        parts.append(f"{html} is up to date")
    return UsageError("; ".join(parts))


def write_story_without_report(study: optuna.Study, artifact_store_dir: Path | None) -> None:
    """The dashboard's note and figures for a `run --no-report`: same context, no files."""
    context = report_context(study, artifact_store_dir)
    write_dashboard_story(study, context, build_figures(context), {})
