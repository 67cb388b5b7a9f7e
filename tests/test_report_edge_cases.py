"""Report edge cases: studies with nothing, one or only pruned trials, several workers, plain
Optuna studies, hostile text, bad formats and a machine without Chromium. Each must give a
valid report (or one clear UsageError), never a crash."""

from __future__ import annotations

import pypdf
import pytest

from search.errors import UsageError
from search.report import report_context, write_report
from tests.report_fixtures import build_study, plain_optuna_study
from tests.test_report import SECTION_IDS, ParsedReport

HOSTILE = "<script>alert(1)</script>{{ 7*7 }}"


def _html(paths) -> ParsedReport:
    return ParsedReport(paths["html"].read_text(encoding="utf-8"))


def _sections(parsed: ParsedReport) -> list[str]:
    return [a["id"] for tag, a in parsed.tags if tag == "section"]


def test_no_complete_trial_gives_a_short_valid_report(tmp_path):
    fixture = build_study(
        tmp_path / "s", n_trials=3, sweeps=False, n_pruned=0, n_failed=2, n_running=1
    )
    paths = write_report(fixture.study, tmp_path / "out")
    parsed = _html(paths)
    assert _sections(parsed) == ["summary", "diagnostics", "reproducibility"]
    assert "No trial has completed" in parsed.visible_text()
    reader = pypdf.PdfReader(paths["pdf"])
    assert 2 <= len(reader.pages) <= 6
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "No trial has completed" in text
    assert [item.title for item in reader.outline if not isinstance(item, list)] == [
        "1. Summary",
        "2. Search diagnostics",
        "3. Reproducibility",
    ]


def test_one_complete_trial(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=1, sweeps=False, n_pruned=0, n_failed=0)
    context = report_context(fixture.study)
    only = fixture.study.trials[0]
    assert context.summary.recommendation.number == only.number
    assert "the only configuration on the Pareto front" in context.summary.recommendation.method
    assert "single run" in context.summary.recommendation.evidence
    assert "at least 10 complete trials" in context.importance.note
    parsed = _html(write_report(fixture.study, tmp_path / "out", formats=("html",)))
    assert _sections(parsed) == SECTION_IDS
    assert (
        f"first measured by trial {only.number}, chosen as the only configuration on the "
        "Pareto front" in parsed.visible_text()
    )
    assert len(context.reconstructions.panels) == 1


def test_only_pruned_trials(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=4, sweeps=False, n_pruned=4, n_failed=0)
    context = report_context(fixture.study)
    assert context.n_complete == 0 and context.diagnostics.pruning.n_pruned == 4
    parsed = _html(write_report(fixture.study, tmp_path / "out", formats="html"))
    assert _sections(parsed) == ["summary", "diagnostics", "reproducibility"]
    text = parsed.visible_text()
    assert "4 of the 4 sampled trials were pruned" in text and "No trial has completed" in text


def test_several_workers(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=24, workers=3, artifacts=False)
    context = report_context(fixture.study)
    assert [w.worker for w in context.diagnostics.workers] == [
        "host0:1000",
        "host1:1001",
        "host2:1002",
    ]
    assert sum(sum(w.states.values()) for w in context.diagnostics.workers) == 24
    parsed = _html(write_report(fixture.study, tmp_path / "out", formats=["html"]))
    assert "3 (host0:1000, host1:1001, host2:1002)" in parsed.visible_text()
    # without artifacts the report says so instead of showing images
    assert "No Pareto trial stored a reconstruction grid" in parsed.visible_text()


@pytest.mark.slow
def test_plain_optuna_study_shows_what_it_can(tmp_path):
    study = plain_optuna_study(tmp_path / "plain", n_trials=15)
    context = report_context(study)
    assert [o.name for o in context.objectives] == ["Objective 0", "Objective 1"]
    assert context.bias_variance.axes == [] and context.latent.coords is None
    assert context.diagnostics.hypervolume is not None
    paths = write_report(study, tmp_path / "out", formats=("html",))
    parsed = _html(paths)
    assert _sections(parsed) == SECTION_IDS
    text = parsed.visible_text()
    assert "not written by vae-search" in text
    assert "The study records no data provenance" in text
    assert len(parsed.with_class("plotly-graph")) >= 4  # front, 2 parameters, importance, ...


def test_hostile_text_is_shown_as_text(tmp_path):
    fixture = build_study(
        tmp_path / "s", name=f"study {HOSTILE}", n_trials=12, sweeps=False, hostile=HOSTILE
    )
    paths = write_report(fixture.study, tmp_path / "out", formats=("html",))
    page = paths["html"].read_text(encoding="utf-8")
    parsed = ParsedReport(page)
    text = parsed.visible_text()
    assert f"study {HOSTILE}" in text  # the study name, as text
    assert "{{ 7*7 }}" in text  # not evaluated by Jinja
    # no script element besides plotly.js, the loader and one JSON spec per figure
    specs = [a for a, _ in parsed.scripts if a.get("class") == "plotly-spec"]
    assert len(parsed.scripts) == 2 + len(specs)
    assert not any("alert(1)" in body and "<" in body for _, body in parsed.scripts)
    assert "<script>alert" not in page


def test_unknown_format_is_a_usage_error(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=2, sweeps=False, n_pruned=0, artifacts=False)
    with pytest.raises(UsageError, match="unknown report format docx"):
        write_report(fixture.study, tmp_path / "out", formats=("html", "docx"))
    assert not (tmp_path / "out" / "report.html").exists()


def test_without_chromium_the_html_is_written_and_the_pdf_fails_in_one_line(tmp_path, monkeypatch):
    fixture = build_study(tmp_path / "s", n_trials=2, sweeps=False, n_pruned=0, artifacts=False)
    # BROWSER_PATH is how kaleido/choreographer are told which browser to use
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(UsageError) as caught:
        write_report(fixture.study, tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install chromium" in message and "plotly_get_chrome" in message
    assert (tmp_path / "out" / "report.html").stat().st_size > 1_000_000
    assert not (tmp_path / "out" / "report.pdf").exists()


def test_a_missing_artifact_store_is_reported_not_fatal(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=12, sweeps=False)
    context = report_context(fixture.study, artifact_store_dir=tmp_path / "moved-away")
    assert context.reconstructions.panels == []
    assert "was not found" in context.reconstructions.note
    assert context.latent.coords is None and "latent" in context.latent.note


@pytest.mark.timeout(300)
def test_a_failed_pdf_step_leaves_no_older_pdf_beside_the_new_html(tmp_path, monkeypatch):
    """Seen: `TMPDIR=/nonexistent/dir run ...` on a study with a report kept the old
    report.pdf beside the new report.html, and the error blamed the browser in a tuple's repr."""
    fixture = build_study(tmp_path / "s", n_trials=2, sweeps=False, n_pruned=0, artifacts=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.pdf").write_bytes(b"%PDF-1.7 an older report\n")
    # Python falls back to /tmp; the browser kaleido starts does not
    monkeypatch.setenv("TMPDIR", str(tmp_path / "nonexistent" / "dir"))
    with pytest.raises(UsageError) as caught:
        write_report(fixture.study, out)
    message = str(caught.value)
    assert "\n" not in message and "('" not in message, message
    assert message.startswith("the PDF was not written (")
    assert f"TMPDIR='{tmp_path / 'nonexistent' / 'dir'}' is not a folder" in message
    assert f"the older {out / 'report.pdf'} was removed" in message
    assert not (out / "report.pdf").exists()
    assert (out / "report.html").stat().st_size > 1_000_000
    assert f"{out / 'report.html'} is up to date" in message
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no temporary file left
