"""`studies --json`: the listing as data a script can read, without credentials."""

from __future__ import annotations

import json

import optuna

from tests.conftest import run_cli


def test_studies_json_lists_name_directions_counts_and_storage(smoke_study):
    result = run_cli("studies", "--json", cwd=smoke_study.workdir, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    entry = next(s for s in listed if s["name"] == smoke_study.name)
    assert entry["directions"] == ["maximize", "minimize"]
    assert entry["metric_names"] == ["SSIM", "MSE"]
    assert entry["storage"] == f"sqlite:///studies/{smoke_study.name}.db"
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    expected = {state.name.lower(): 0 for state in optuna.trial.TrialState}
    for trial in study.trials:
        expected[trial.state.name.lower()] += 1
    assert entry["trials"] == expected
    assert expected["complete"] > 0


def test_studies_json_never_shows_a_password(fresh_postgres_url, tmp_path):
    """A storage URL with a password is listed with `***` in its place."""
    optuna.create_study(
        study_name="json-listed", storage=fresh_postgres_url, directions=["maximize", "minimize"]
    )
    result = run_cli(
        "studies", "--json", "--storage", fresh_postgres_url, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    entry = next(s for s in listed if s["name"] == "json-listed")
    password = fresh_postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in result.stdout
    assert "***@" in entry["storage"]
    assert entry["trials"]["complete"] == 0
