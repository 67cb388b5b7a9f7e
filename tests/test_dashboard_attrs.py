"""The study attributes optuna-dashboard shows are short and in words; the long records (format
version 4: study system attrs) are still read by everything that reads a study."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

import optuna
import pytest

from search import records
from search.space import default_space
from tests.conftest import dashboard_server, run_cli

SHOWN_CHARS = 120  # a study attribute's value a person reads on one line of the study page


def _study_page(study_name: str, storage: str, cwd: Path) -> dict:
    """The JSON optuna-dashboard's study page loads, read from the real server."""
    urlopen = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    with dashboard_server(study_name, storage, cwd, cwd / "dashboard.log") as base:
        with urlopen(f"{base}/api/studies", timeout=60) as response:
            studies = json.load(response)
        summary = next(s for s in studies["study_summaries"] if s["study_name"] == study_name)
        with urlopen(f"{base}/api/studies/{summary['study_id']}?after=0", timeout=60) as response:
            return json.load(response)


@pytest.mark.slow
def test_the_study_page_shows_short_attributes_in_words(smoke_study, tmp_path):
    db = tmp_path / "smoke.db"
    shutil.copyfile(smoke_study.as_run_storage.removeprefix("sqlite:///"), db)
    storage = f"sqlite:///{db}"
    page = _study_page(smoke_study.name, storage, tmp_path)

    shown = {a["key"]: a["value"] for a in page["user_attrs"]}
    long = {k: v for k, v in shown.items() if len(k) > 40 or len(v) > SHOWN_CHARS}
    assert not long, long
    machine = {k: v for k, v in shown.items() if re.match(r"\s*[\[{]", v)}
    assert not machine, machine  # no JSON object or list: a person's words
    assert shown[records.SEARCH_SPACE].startswith(f"{len(default_space())} parameters: ")
    assert shown[records.BUDGET].startswith("preset smoke: ")
    assert shown[records.PRUNING] == "on: trials compared at epochs 1"
    assert shown[records.FIXED_PARAMS] == "predictor: no"
    assert records.SEARCH_SPACE_DISTRIBUTIONS not in shown
    (run,) = (v for k, v in shown.items() if k.startswith(records.RUN_PREFIX))
    assert "python -m search run" in run

    # every record is still there for the readers, under its plain name
    study = optuna.load_study(study_name=smoke_study.name, storage=storage)
    attrs = records.study_attrs(study)
    assert records.format_version(attrs) == records.FORMAT_VERSION == 4
    assert set(records.read_search_space(attrs)) == set(default_space())
    assert records.read_distributions(attrs) is not None
    assert records.read_fixed_params(attrs) == {"predictor": False}
    assert (records.read_data(attrs) or {})["bundled_subset"] is True
    assert (records.read_budget(attrs) or {})["preset"] == "smoke"
    assert records.read_pruning_settings(attrs)["rungs"] == [1]
    (entry,) = records.read_runs(attrs)
    assert entry["command"].startswith("python -m search run")

    # and by the commands: `studies`, the report, export
    listed = run_cli("studies", "--storage", storage, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in json.loads(listed.stdout)] == [smoke_study.name]
    reported = run_cli(
        *("report", "--study", smoke_study.name, "--storage", storage),
        *("--format", "html", "--out", str(tmp_path / "report")),
        cwd=tmp_path,
        timeout=300,
    )
    assert reported.returncode == 0, reported.stderr[-3000:]
    text = re.sub(r"<[^>]*>", "", (tmp_path / "report" / "report.html").read_text())
    text = " ".join(text.split())
    assert "python -m search run --preset smoke" in text  # the run log, from system attrs
    assert "preset smoke, epochs 2" in text and "predictor = no" in text
    exported = run_cli(
        *("export", "--study", smoke_study.name, "--storage", storage),
        *("--out", str(tmp_path / "export")),
        cwd=tmp_path,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["params"]["predictor"] is False  # the fixed parameters, read from system attrs
    assert config["budget"] == records.read_budget(attrs)
    assert config["data"] == records.read_data(attrs)
