"""`studies --json`: the listing as data a script can read, without credentials."""

from __future__ import annotations

import json

import optuna

from search import records
from search.storage import absolute_url
from search.summaries import study_summary
from tests.conftest import run_cli


def test_studies_json_lists_name_directions_counts_and_storage(smoke_study):
    result = run_cli("studies", "--json", cwd=smoke_study.workdir, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    entry = next(s for s in listed if s["name"] == smoke_study.name)
    assert entry["directions"] == ["maximize", "minimize"]
    assert entry["metric_names"] == ["SSIM", "MSE"]
    # absolute, though the run was given none (it was `sqlite:///studies/NAME.db`)
    db = (smoke_study.workdir / "studies" / f"{smoke_study.name}.db").resolve()
    assert entry["storage"] == f"sqlite:///{db.as_posix()}"
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    assert records.read_runs(records.study_attrs(study))[0]["storage"] == entry["storage"]
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


def test_studies_where_there_is_none_says_so_on_stderr(tmp_path):
    """Seen: `studies --json` from another folder printed `[]` and nothing else."""
    for args in (["studies", "--json"], ["studies"]):
        result = run_cli(*args, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"no studies under {tmp_path.resolve() / 'studies'}" in result.stderr
    assert json.loads(run_cli("studies", "--json", cwd=tmp_path, timeout=120).stdout) == []
    optuna.create_study(study_name="gone", storage=f"sqlite:///{tmp_path / 'none.db'}")
    optuna.delete_study(study_name="gone", storage=f"sqlite:///{tmp_path / 'none.db'}")
    result = run_cli("studies", "--storage", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"no study in sqlite:///{tmp_path / 'none.db'}" in result.stderr


def test_a_relative_storage_is_stored_and_exported_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    here = tmp_path.resolve().as_posix()
    assert absolute_url("sqlite:///studies/a.db") == f"sqlite:///{here}/studies/a.db"
    assert absolute_url("journal:///studies/a.log") == f"journal:///{here}/studies/a.log"
    assert absolute_url("studies/a.log") == f"journal:///{here}/studies/a.log"
    assert absolute_url("sqlite:////x/a.db?timeout=5") == "sqlite:////x/a.db?timeout=5"
    for kept in ("postgresql://u@h/db", "memory:", "sqlite:///:memory:"):
        assert absolute_url(kept) == kept
    study = optuna.create_study(
        study_name="rel", storage="sqlite:///studies/a.db", directions=["maximize", "minimize"]
    )
    # what export's config.json and `studies --json` say (both come from study_summary)
    assert study_summary(study, "sqlite:///studies/a.db")["storage"] == (
        f"sqlite:///{here}/studies/a.db"
    )


def test_stored_names_cannot_forge_rows_recolour_or_crash_the_table(tmp_path):
    """Seen: a study name with a newline printed a second, forged row; ANSI escapes reached
    the terminal; an RTL letter under PYTHONIOENCODING=ascii ended in UnicodeEncodeError."""
    import os
    import subprocess
    import sys

    (tmp_path / "studies").mkdir()
    url = f"sqlite:///{tmp_path / 'studies' / 'odd.db'}"
    names = ["forged\nfake-study 9 9 9", "\x1b[31mred\x1b[0m", "\u05d0\u05d1"]
    for name in names:
        optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-m", "search", "studies"], cwd=tmp_path, env=env,
        capture_output=True, text=True, encoding="ascii", errors="strict",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = result.stdout.splitlines()
    assert len(rows) == 1 + len(names), result.stdout  # the header and one row per study
    assert "\x1b" not in result.stdout
    assert sum(row.startswith("fake-study") for row in rows) == 0
    assert any("\\u05d0\\u05d1" in row for row in rows), result.stdout


def test_listing_studies_never_writes_into_a_stray_file(tmp_path):
    """Seen: `studies` turned a 0-byte studies/empty.db into a 114,688-byte Optuna database."""
    (tmp_path / "studies").mkdir()
    empty, other = tmp_path / "studies" / "empty.db", tmp_path / "studies" / "notes.db"
    empty.write_bytes(b"")
    import sqlite3

    with sqlite3.connect(other) as db:  # a SQLite file of something else
        db.execute("CREATE TABLE notes (text TEXT)")
    before = other.read_bytes()
    for args in (["studies"], ["studies", "--json"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stderr.count("holds no Optuna study storage") == 2, result.stderr
        assert empty.stat().st_size == 0 and other.read_bytes() == before
    asked = run_cli("studies", "--storage", f"sqlite:///{empty}", cwd=tmp_path)
    assert asked.returncode == 2 and asked.stderr.splitlines()[-1].startswith("error: ")
    assert empty.stat().st_size == 0
