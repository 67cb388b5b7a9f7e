"""Small wording defects of the report: each stated once, in words, not as Python values."""

from __future__ import annotations

import re

from search import records
from search.report import write_report
from tests.report_fixtures import build_study


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    end = page.find('<section class="report-section"', start)
    return page[start : end if end != -1 else len(page)]


def test_bundled_notice_once_and_pruner_in_words(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=12, sweeps=False)
    page = write_report(fixture.study, tmp_path / "out", formats=("html",))["html"].read_text()
    summary = re.sub(r"<[^>]+>", " ", _section(page, "summary"))
    assert summary.count("5,000-image") == 1, summary
    diagnostics = re.sub(r"<[^>]+>", " ", _section(page, "diagnostics"))
    assert "True" not in diagnostics and "False" not in diagnostics
    pruner = re.search(r"Pruner [^.]*\.", diagnostics)
    assert pruner is not None
    assert pruner.group(0).startswith("Pruner on; grace epochs 2; eta 2; rungs at epochs ")


def test_flags_in_tables_read_yes_or_no():
    from search.report.prose import fmt_number

    assert (fmt_number(True), fmt_number(False)) == ("yes", "no")
    assert fmt_number(3) == "3" and fmt_number(0.25) == "0.25"


def test_pruning_guards_in_words(tmp_path):
    fixture = build_study(tmp_path / "s", n_trials=12, sweeps=False)
    pruning = {**records.study_attrs(fixture.study)["pruning"], "noise_margin_sd": 2.0}
    records.write_pruning_settings(fixture.study, {**pruning, "envelope_min_complete": 0})
    page = write_report(fixture.study, tmp_path / "out", formats=("html",))["html"].read_text()
    diagnostics = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _section(page, "diagnostics")))
    assert "noise margin 2 seed SD; no envelope guard." in diagnostics
