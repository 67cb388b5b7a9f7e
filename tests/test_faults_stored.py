"""Faults from stored studies (issue 20, round 2, causes 8 and 10-14): concurrent records of
runs; what a study stores is data, never trusted as a path, a size, a number or Markdown.
Each test fails without its fix; real storages, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY as TINY_RUN

# -- 8. concurrent records of runs, on a journal too ---------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_eight_concurrent_starters_keep_every_record_of_runs(tmp_path: Path, kind: str) -> None:
    """Before 5c49c08 the list under `runs` was read, changed and written back: 2-4 of 8
    concurrent starters' records were lost on SQLite, up to 2 on a journal."""
    import os
    import subprocess
    import sys
    import textwrap

    import optuna

    from search import records
    from search.storage import open_storage

    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:///{tmp_path}/s.log"
    optuna.create_study(storage=open_storage(url), study_name="s", directions=DIRECTIONS)
    script = textwrap.dedent(
        f"""
        import sys, optuna
        from search import records
        from search.storage import open_storage
        study = optuna.load_study(study_name="s", storage=open_storage({url!r}))
        records.append_run(study, records.study_attrs(study), {{"command": "run " + sys.argv[1]}})
        """
    )
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo}
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(k)], env=env, cwd=repo)
        for k in range(8)
    ]
    assert all(w.wait(timeout=300) == 0 for w in workers)
    stored = records.study_attrs(optuna.load_study(study_name="s", storage=open_storage(url)))
    commands = sorted(r["command"] for r in records.read_runs(stored))
    assert commands == sorted(f"run {k}" for k in range(8))


# -- 10. a multi-megabyte stored command -------------------------------------------------------


def test_a_multi_megabyte_stored_command_is_redacted_bounded_and_reported(tmp_path: Path) -> None:
    """shlex.split is quadratic in a word's length: a 10 MB command kept `report` busy for
    over 11 minutes (on main 0da25cf this test runs past pytest's 900 s timeout). Now it is
    split in linear time, redacted, then shown bounded."""
    from search import records
    from search.report import write_report
    from search.storage import redact_command
    from search.terminal import SHOWN_LIMIT
    from tests.report_fixtures import build_study

    fixture = build_study(tmp_path / "s", n_trials=6, sweeps=False)
    secret = "Sup3rSecretPw"
    huge = "x" * 10_000_000
    command = (
        f"python -m search run --storage postgresql://u:{secret}@db/s --study {huge} --trials 2"
    )
    fixture.study.set_user_attr(records.RUN_PREFIX + "0" * 20 + "-huge", {"command": command})
    paths = write_report(fixture.study, tmp_path / "out", formats=("html",))
    page = paths["html"].read_text(encoding="utf-8")
    assert secret not in page
    assert "postgresql://u:***@db/s" in page
    assert f"({len(redact_command(command)) - SHOWN_LIMIT:,}</span>" in page
    assert "x" * (SHOWN_LIMIT + 1) not in page


def test_the_linear_splitter_agrees_with_shlex_split() -> None:
    import random
    import shlex

    from search.shell_words import split_words

    pieces = ["a", "b", " ", "\t", "\n", "'", '"', "\\", '\\"', "$", "=", "é"]
    rng = random.Random(20)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            expected: list[str] | type[ValueError] = shlex.split(text)
        except ValueError:
            expected = ValueError
        try:
            got: list[str] | type[ValueError] = split_words(text)
        except ValueError:
            got = ValueError
        assert got == expected, repr(text)
    words = ["", "a b", "it's", 'say "hi"', "back\\slash", "x" * 10_000]
    assert split_words(shlex.join(words)) == words


# -- 11. stored paths: symbolic links out of the artifact folder, a stored `/`, export ids -------

SYSTEM_PNG = b"\x89PNG\r\n\x1a\n" + b"system image outside the artifact folder" * 10


def _complete_study(tmp_path: Path):
    from tests.report_fixtures import build_study

    return build_study(tmp_path / "s", n_trials=6, sweeps=False, n_pruned=0, n_failed=0)


def _set_trial_artifacts(db: Path, ids: dict[str, str]) -> None:
    """Hand-edit every trial's stored artifact ids, as a hostile study file would hold them."""
    import json
    import sqlite3

    from search import records

    with sqlite3.connect(db) as con:
        for table in ("trial_user_attributes", "trial_system_attributes"):
            for key in (records.ARTIFACTS, records.MACHINE_PREFIX + records.ARTIFACTS):
                con.execute(f"UPDATE {table} SET value_json=? WHERE key=?", (json.dumps(ids), key))


def test_the_report_never_follows_a_symbolic_link_out_of_the_artifact_folder(
    tmp_path: Path, caplog
) -> None:
    import base64

    from search.report import write_report

    fixture = _complete_study(tmp_path)
    outside = tmp_path / "elsewhere" / "system.png"
    outside.parent.mkdir()
    outside.write_bytes(SYSTEM_PNG)
    linked = 0
    for path in Path(fixture.artifacts_dir).iterdir():
        if path.read_bytes().startswith(SYSTEM_PNG[:8]):
            path.unlink()
            path.symlink_to(outside)
            linked += 1
    assert linked
    with caplog.at_level("WARNING"):
        paths = write_report(fixture.study, tmp_path / "out", formats=("html",))
    page = paths["html"].read_text(encoding="utf-8")
    assert base64.b64encode(SYSTEM_PNG).decode()[:40] not in page
    assert "leads outside the artifact folder" in page
    assert any("outside the artifact folder" in r.getMessage() for r in caplog.records)


def test_a_stored_artifact_folder_of_root_is_not_used(tmp_path: Path, caplog) -> None:
    import base64

    import optuna

    from search.paths import study_artifacts_dir
    from search.report import write_report

    fixture = _complete_study(tmp_path)
    outside = tmp_path / "system.png"
    outside.write_bytes(SYSTEM_PNG)
    db = Path(fixture.storage_url.removeprefix("sqlite:///"))
    _set_trial_artifacts(db, {"grid": str(outside).lstrip("/")})
    study = optuna.load_study(study_name=fixture.study.study_name, storage=fixture.storage_url)
    study.set_user_attr("artifacts_dir", "/")
    with caplog.at_level("WARNING"):
        assert study_artifacts_dir(study.user_attrs, fixture.storage_url) is None
        paths = write_report(study, tmp_path / "out", formats=("html",))
    assert base64.b64encode(SYSTEM_PNG).decode()[:40] not in paths["html"].read_text("utf-8")
    assert any("filesystem root" in r.getMessage() for r in caplog.records)
    # nor the folder that holds the study's own database
    study.set_user_attr("artifacts_dir", str(db.parent.parent))
    assert study_artifacts_dir(study.user_attrs, fixture.storage_url) is None
    study.set_user_attr("artifacts_dir", str(fixture.artifacts_dir))
    assert study_artifacts_dir(study.user_attrs, fixture.storage_url) == fixture.artifacts_dir


@pytest.mark.parametrize("stored_id", ["ABSOLUTE", "../../../outside.weights.h5", "link"])
def test_export_takes_no_weights_from_outside_the_artifact_folder(
    tmp_path: Path, stored_id: str, caplog
) -> None:
    import optuna

    from search.export import plan_export
    from search.report.trials import read_study

    fixture = _complete_study(tmp_path)
    outside = tmp_path / "outside.weights.h5"
    outside.write_bytes(b"not the study's weights")
    (Path(fixture.artifacts_dir) / "link").symlink_to(outside)
    (Path(fixture.artifacts_dir) / "kept").write_bytes(b"the study's own weights")
    stored_id = str(outside) if stored_id == "ABSOLUTE" else stored_id
    db = Path(fixture.storage_url.removeprefix("sqlite:///"))
    _set_trial_artifacts(db, {"model": stored_id})
    study = optuna.load_study(study_name=fixture.study.study_name, storage=fixture.storage_url)
    with caplog.at_level("WARNING"):
        plan = plan_export(read_study(study), Path(fixture.artifacts_dir))
    assert plan.weights_path is None  # left out: the export retrains instead
    assert any("outside the artifact folder" in r.getMessage() for r in caplog.records)
    _set_trial_artifacts(db, {"model": "kept"})
    study = optuna.load_study(study_name=fixture.study.study_name, storage=fixture.storage_url)
    kept = plan_export(read_study(study), Path(fixture.artifacts_dir)).weights_path
    assert kept == (Path(fixture.artifacts_dir) / "kept").resolve()


# -- 12. non-finite values: said, never dropped silently; the dashboard serves the study --------


def _study_with_non_finite_values(folder: Path) -> str:
    """A journal study (journal lines keep NaN, as SQLite does not) whose trials 2-4 were
    stored COMPLETE with NaN or infinite values, as a foreign writer can; returns its URL."""
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    from search.storage import open_storage

    url = f"journal:///{folder / 'studies' / 'nanj.log'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="nanj", directions=DIRECTIONS)
    study.set_metric_names(["SSIM", "MSE"])
    nan, inf = float("nan"), float("inf")
    for values in ([0.6, 0.03], [0.7, 0.02], [nan, 0.01], [0.9, inf], [0.8, nan]):
        trial = study.ask({"latent_dim": IntDistribution(1, 32)})
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, values)
    return url


DIRECTIONS = ["maximize", "minimize"]


def test_the_report_and_studies_say_which_complete_trials_were_left_out(
    tmp_path: Path, capsys
) -> None:
    import json

    import optuna

    from search import cli
    from search.report import write_report
    from search.storage import open_storage
    from tests.test_report import ParsedReport

    url = _study_with_non_finite_values(tmp_path)
    study = optuna.load_study(study_name="nanj", storage=open_storage(url))
    paths = write_report(study, tmp_path / "out", formats=("html",))
    text = ParsedReport(paths["html"].read_text("utf-8")).visible_text()
    assert "3 completed trials left out of every section" in text
    assert "not finite (NaN or infinite)" in text and "(trials 2, 3, 4)" in text

    capsys.readouterr()
    assert cli.main(["studies", "--storage", url]) == 0
    said = capsys.readouterr()
    assert "3 of the complete trials of nanj" in said.err and "(trials 2, 3, 4)" in said.err
    assert cli.main(["studies", "--json", "--storage", url]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)[0]["non_finite_trials"] == [2, 3, 4]
    assert "not finite" in said.err


def test_the_dashboard_serves_a_study_with_nan_values(tmp_path: Path) -> None:
    """optuna-dashboard asserts that no value is NaN: every study page was HTTP 500."""
    import json
    import urllib.request

    from tests.conftest import dashboard_server

    url = _study_with_non_finite_values(tmp_path)
    urlopen = urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    with dashboard_server("nanj", url, tmp_path, tmp_path / "dashboard.log") as base:
        with urlopen(f"{base}/api/studies", timeout=60) as response:
            study_id = json.load(response)["study_summaries"][0]["study_id"]
        with urlopen(f"{base}/api/studies/{study_id}?after=0", timeout=60) as response:
            assert response.status == 200
            trials = json.load(response)["trials"]
    states = {t["number"]: t["state"] for t in trials}
    assert states == {0: "Complete", 1: "Complete", 2: "Fail", 3: "Complete", 4: "Fail"}
    attrs = {a["key"]: a["value"] for a in trials[2]["user_attrs"]}
    assert "not finite" in attrs["left_out"]


# -- 13b. stored strings in the dashboard note's Markdown ----------------------------------------

MARKDOWN_HOSTILE = (
    "x|y\n# forged [link](http://evil.example) ![img](http://evil.example/i.png) "
    "<b>html</b> `tick *em*"
)


def test_stored_strings_are_literal_text_in_the_dashboard_note(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    import search.report  # before the story: search.report imports it
    from search.dashboard_story import story_markdown
    from tests.report_fixtures import build_study

    fixture = build_study(
        tmp_path / "s",
        name=f"study {MARKDOWN_HOSTILE}",
        n_trials=12,
        sweeps=False,
        hostile=MARKDOWN_HOSTILE,
    )
    context = search.report.report_context(fixture.study, fixture.artifacts_dir)
    body = story_markdown(context, {"html": tmp_path / "out" / "report.html"})
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "em_open"}
    headings = [
        "".join(c.content for c in tokens[i + 1].children or [] if c.type == "text")
        for i, t in enumerate(tokens)
        if t.type == "heading_open"
    ]
    assert headings[0] == f"vae-search: study {' '.join(MARKDOWN_HOSTILE.splitlines())}"
    ours = ["Pareto front", "Parameter importance", "Data and budget", "Report"]
    assert [h.split(" (")[0] for h in headings[1:]] == [
        h for h in ours if h != "Parameter importance" or h in body
    ]
    # every row of both tables keeps its header's cells, whatever a parameter value holds
    widths, width = [], 0
    for token in tokens:
        width = 0 if token.type == "tr_open" else width + (token.type in ("th_open", "td_open"))
        if token.type == "tr_close":
            widths.append(width)
    assert widths == [3] * 3 + [5] * (1 + len(context.pareto.front))
    html = MarkdownIt("commonmark").enable("table").render(body)
    assert "<a " not in html and "<img" not in html and "<b>" not in html
    assert "[link](http://evil.example)" in html  # shown as the text it is


# -- 14. a study whose trials searched other parameters: refused before any data ----------------

RUN_TINY = ["run", "--trials", "1", *TINY_RUN, "--confirm", "0", "--no-report"]


def _plain_study(root: Path, distributions: dict, ours: bool = False) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution

    (root / "studies").mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{root / 'studies' / 'mnist-vae.db'}",
        study_name="mnist-vae",
        directions=DIRECTIONS,
    )
    if ours:
        study.set_user_attr("created_by", "vae-search")
    for _ in range(2):
        params = {
            name: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low
            for name, d in distributions.items()
        }
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, values=[0.5, 0.03]
            )
        )


def _kinds() -> dict[str, tuple[dict, str]]:
    from optuna.distributions import CategoricalDistribution as C
    from optuna.distributions import FloatDistribution as F
    from optuna.distributions import IntDistribution as I

    return {
        "another range": ({"latent_dim": I(1, 64)}, "latent_dim as integers 1 to 64"),
        "other choices": ({"loss": C(["bce", "l1"])}, "loss as choices bce, l1"),
        "another kind": ({"latent_dim": F(1.0, 64.0)}, "latent_dim as numbers 1 to 64"),
        "an extra parameter": (
            {"latent_dim": I(2, 2), "dropout": F(0.0, 0.5)},
            "has the parameter dropout",
        ),
    }


@pytest.mark.parametrize("kind", list(_kinds()))
def test_a_plain_optuna_study_with_other_parameters_is_refused_up_front(
    kind: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Before: a traceback from Optuna after the data was loaded, or a run that mixed
    trials of two spaces in one front."""
    from tests.hostile import refused, snapshot

    distributions, says = _kinds()[kind]
    monkeypatch.chdir(tmp_path)
    _plain_study(tmp_path, distributions)
    before = snapshot(tmp_path)
    line = refused(RUN_TINY, capsys)
    assert says in line and "--study NEW" in line
    assert snapshot(tmp_path) == before  # nothing trained, nothing written


def test_other_choices_on_our_own_study_are_refused_and_a_narrower_range_is_not(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """`--space filters=8` on a study that searched filters in 8, 64 failed mid-run."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from search.run.options import RunOptions
    from search.run.setup import build_space
    from search.run.space_check import check_same_space
    from search.storage import open_storage
    from tests.hostile import refused

    monkeypatch.chdir(tmp_path)
    stored = {"latent_dim": IntDistribution(1, 32), "filters": CategoricalDistribution([8, 64])}
    _plain_study(tmp_path, stored, ours=True)
    line = refused(RUN_TINY, capsys)  # TINY has --space filters=8: one choice, not two
    assert "filters as choices 8, 64, this run as choices 8" in line
    options = RunOptions(study="mnist-vae", space=["latent_dim=2:2", "filters=8,64"])
    storage = open_storage(f"sqlite:///{tmp_path / 'studies' / 'mnist-vae.db'}")
    check_same_space(storage, options, build_space(options))  # our own study: a range may narrow
