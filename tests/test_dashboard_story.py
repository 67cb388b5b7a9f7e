"""The study's story in optuna-dashboard: note and figures, read back through its HTTP API."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna_dashboard import get_note

from search.report import report_context
from tests.conftest import dashboard_server, run_cli
from tests.report_fixtures import build_study

# A value longer than this does not fit a 1,400-px trial page at the dashboard's font.
LINE_CHARS = 160


def _dashboard_detail(study_name: str, storage: str, cwd: Path) -> dict:
    """Start `python -m search dashboard`, read the study as the dashboard's UI does, stop."""
    # straight to the local server, whatever proxy the environment names
    urlopen = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    with dashboard_server(study_name, storage, cwd, cwd / "dashboard.log") as base:
        with urlopen(f"{base}/api/studies", timeout=60) as response:
            studies = json.load(response)
        summary = next(s for s in studies["study_summaries"] if s["study_name"] == study_name)
        url = f"{base}/api/studies/{summary['study_id']}?after=0"
        with urlopen(url, timeout=60) as response:
            return json.load(response)


@pytest.mark.slow
def test_report_writes_note_and_figures_that_a_rewrite_replaces(tmp_path):
    fixture = build_study(tmp_path / "study", n_trials=24)
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    for _ in range(2):  # the second report stands for a resumed study's new report
        result = run_cli(
            "report",
            "--study",
            "report-fixture",
            "--storage",
            storage,
            "--format",
            "html",
            "--out",
            str(tmp_path / "out"),
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="report-fixture", storage=storage)
    context = report_context(study, tmp_path / "study" / "artifacts")
    rec = context.summary.recommendation
    assert rec is not None and fixture is not None

    detail = _dashboard_detail("report-fixture", storage, tmp_path)
    note = detail["note"]
    assert note["version"] == 2  # one note, rewritten: not two
    body = note["body"]
    assert f"**Recommended configuration** (trial {rec.number};" in body
    assert f"{rec.values['SSIM']:.4f}" in body and f"{rec.values['MSE']:.5f}" in body
    front_rows = [
        line for line in body.splitlines() if line.startswith("| ") and "|---" not in line
    ]
    # the recommendation's metric table (header + 2 rows) and the front's (header + one per row)
    assert len(front_rows) == 3 + 1 + len(context.pareto.front)
    assert str((tmp_path / "out" / "report.html").resolve()) in body
    # where the figures are (the study's main page, not "under this note"), and flags in words
    assert "on this study's main page, in the grid of plots" in body
    assert "under this note" not in body
    assert not re.search(r"\b(True|False)\b", body)
    # the attributes a person reads on a trial page: the dashboard shows each value on one
    # line, and none of ours is longer than a 1,400-px window holds
    trial_attrs = {a["key"]: a["value"] for a in detail["trials"][0]["user_attrs"]}
    long = sorted(k for k, v in trial_attrs.items() if len(v) > LINE_CHARS)
    assert not long, long  # machine records (curve, rung values, artifact ids) are system attrs

    ids = [g["id"] for g in detail["plotly_graph_objects"]]
    assert sorted(ids) == sorted(
        [
            "vae-search-pareto-front",
            "vae-search-hypervolume",
            "vae-search-sweep-latent_dim",
            "vae-search-sweep-n_layers",
        ]
    )
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    front_points = sum(
        len(trace.get("x", [])) for trace in graphs["vae-search-pareto-front"]["data"]
    )
    assert front_points >= len(context.pareto.numbers)
    hypervolume = graphs["vae-search-hypervolume"]["data"][0]
    assert context.diagnostics.hypervolume is not None
    assert hypervolume["y"] == context.diagnostics.hypervolume.values


def test_run_leaves_the_note_even_without_a_report(smoke_study):
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.as_run_storage)
    context = report_context(study, smoke_study.artifacts)
    rec = context.summary.recommendation
    assert rec is not None
    body = get_note(study)
    assert body.startswith(f"## vae-search: {smoke_study.name}")
    assert f"(trial {rec.number};" in body
    assert "python -m search report --study smoke" in body
