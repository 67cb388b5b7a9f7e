"""A database password never leaves the URL it came in: not in output, study records or report.

A real study on the real PostgreSQL fixture, whose URL holds a password, run in this process
through the CLI's entry point (so the command line it records is the one typed here), resumed
with the URL taken from `VAE_SEARCH_STORAGE`, then listed and reported.
"""

from __future__ import annotations

import json

import optuna
import pypdf
import pytest
from optuna.trial import TrialState

from search import cli, records
from search.run.process import without_storage as _without_storage
from search.storage import STORAGE_ENV, redact_argv, redact_command
from tests.pg_server import PASSWORD

TINY = [
    "--preset",
    "smoke",
    "--data",
    "bundled",
    "--subset",
    "128",
    "--epochs",
    "1",
    "--no-pruning",
    "--study",
    "secret",
]


def _everything_stored(study: optuna.Study) -> str:
    """Every study and trial attribute, user and system: what the dashboard can show."""
    system = study._storage.get_study_system_attrs(study._study_id)  # no public API in Optuna 5
    records = [study.user_attrs, system]
    for trial in study.get_trials():
        records += [trial.user_attrs, trial.system_attrs, trial.params]
    return json.dumps(records, default=str)


@pytest.mark.slow
def test_the_password_is_in_no_output_record_or_report(
    fresh_postgres_url: str, tmp_path, monkeypatch, capsys, caplog
) -> None:
    assert PASSWORD in fresh_postgres_url
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    said = []

    first = cli.main(
        ["run", *TINY, "--trials", "1", "--no-report", "--storage", fresh_postgres_url]
    )
    said.append(capsys.readouterr())
    assert first == 0, said[-1].err[-3000:]

    # The resume finds the study through the environment variable, not the command line.
    monkeypatch.setenv(STORAGE_ENV, fresh_postgres_url)
    second = cli.main(["run", *TINY, "--trials", "1"])
    said.append(capsys.readouterr())
    assert second == 0, said[-1].err[-3000:]
    assert not (tmp_path / "studies" / "secret.db").exists()  # no SQLite default was used

    assert cli.main(["studies"]) == 0
    said.append(capsys.readouterr())
    assert cli.main(["studies", "--storage", fresh_postgres_url]) == 0
    said.append(capsys.readouterr())
    listing = said[-2].out + said[-1].out
    assert [line.split()[0] for line in listing.splitlines()].count("secret") == 2

    output = "".join(s.out + s.err for s in said) + caplog.text
    assert PASSWORD not in output
    assert "vae:***@" in output  # the storage is still named, with its password hidden

    study = optuna.load_study(study_name="secret", storage=fresh_postgres_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len([t for t in complete if "confirms" not in t.user_attrs]) == 2
    stored = _everything_stored(study)
    assert PASSWORD not in stored
    commands = [run["command"] for run in records.read_runs(records.study_attrs(study))]
    assert "--storage 'postgresql://vae:***@127.0.0.1:" in commands[0]

    html = (tmp_path / "studies" / "secret" / "report.html").read_text(encoding="utf-8")
    assert PASSWORD not in html
    assert "vae:***@" in html  # the reproducibility table does show the command and storage
    pages = pypdf.PdfReader(tmp_path / "studies" / "secret" / "report.pdf").pages
    text = "".join(page.extract_text() for page in pages)
    assert PASSWORD not in text and PASSWORD not in "".join(text.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--storage", "postgresql://u:pw-1@h/db"],
        ["run", "--storage=postgresql://u:pw-1@h/db"],
        ["run", "--storage", "mysql://u@h/db?password=pw-1"],
    ],
)
def test_command_lines_are_redacted_and_workers_get_no_url(argv: list[str]) -> None:
    assert "pw-1" not in " ".join(redact_argv(argv))
    assert redact_argv(argv)[0] == "run" and "***" in redact_argv(argv)[-1]
    assert "pw-1" not in redact_command("python -m search " + " ".join(argv))
    assert _without_storage([*argv, "--trials", "2"]) == ["run", "--trials", "2"]
