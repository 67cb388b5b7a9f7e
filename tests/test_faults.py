"""Faults in the middle of work (issue 20, round 2): torn journals, dead workers, lost updates.

Each test fails without its fix; real storages, no mocks.
"""

from __future__ import annotations

import datetime
import errno
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from search import journal
from search.storage import open_storage
from tests.conftest import small_tmpfs

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = ["maximize", "minimize"]


def _journal_study(path: Path, trials: int) -> None:
    study = optuna.create_study(
        storage=open_storage(f"journal:///{path}"), study_name="j", directions=DIRECTIONS
    )
    for k in range(trials):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": k},
                distributions={"x": IntDistribution(0, 99)},
                values=[0.5, 0.1],
            )
        )


def _complete(path: Path) -> int:
    study = optuna.load_study(study_name="j", storage=open_storage(f"journal:///{path}"))
    return len(study.get_trials(states=(TrialState.COMPLETE,)))


# -- 1. a torn last line of a journal --------------------------------------------------------


@pytest.mark.parametrize("tail", [b'{"op_code": 5, "worker_id": "ab', b'{"op_code": 5, "wo\n'])
def test_a_torn_last_line_is_cut_off_and_every_complete_trial_comes_back(
    tmp_path: Path, tail: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "j.log"
    _journal_study(log, 5)
    with open(log, "ab") as f:
        f.write(tail)
    capsys.readouterr()
    study = optuna.load_study(study_name="j", storage=open_storage(f"journal:///{log}"))
    assert "warning: cut off a torn last line" in capsys.readouterr().err
    # The next write lands on a clean line, so the file reads afterwards too.
    study.set_user_attr("after", 1)
    assert _complete(log) == 5
    assert log.read_bytes().endswith(b"\n")


def test_an_append_after_a_torn_line_left_by_a_dead_writer_is_not_glued_onto_it(
    tmp_path: Path,
) -> None:
    log = tmp_path / "j.log"
    _journal_study(log, 3)
    storage = open_storage(f"journal:///{log}")
    with open(log, "ab") as f:  # another writer dies mid-write, after this one opened the file
        f.write(b'{"op_code": 5, "wor')
    study = optuna.load_study(study_name="j", storage=storage)
    study.set_user_attr("after", 1)
    study.set_user_attr("later", 2)  # a glued line in the middle would make the file unreadable
    assert _complete(log) == 3


@pytest.fixture
def tiny_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "40k") as mount:
        yield mount


def test_a_full_disk_leaves_the_journal_whole_and_it_reads_once_space_is_freed(
    tiny_disk: Path,
) -> None:
    log = tiny_disk / "j.log"
    _journal_study(log, 2)
    study = optuna.load_study(study_name="j", storage=open_storage(f"journal:///{log}"))
    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    with pytest.raises(OSError) as raised:
        study.set_user_attr("big", "x" * 20_000)
    assert raised.value.errno == errno.ENOSPC
    assert log.read_bytes().endswith(b"\n")  # cut back to the last whole line
    filler.unlink()
    study.set_user_attr("after", 1)
    assert _complete(log) == 2


def test_the_backend_cuts_a_failed_write_back_to_the_size_before(tmp_path: Path) -> None:
    log = tmp_path / "j.log"
    _journal_study(log, 1)
    before = log.read_bytes()
    backend = journal.open_journal(log, None, None, None, True)._backend  # type: ignore[attr-defined]
    assert type(backend).__name__ != "JournalFileBackend"
    with pytest.raises(TypeError):
        backend.append_logs([{"ok": 1}, {"bad": object()}])  # fails before any byte is written
    assert log.read_bytes() == before


# -- 2. a RUNNING trial without a heartbeat row ----------------------------------------------


def _sqlite_study_with_orphan(db: Path, age_s: float) -> optuna.Study:
    """A study whose one trial is RUNNING with no heartbeat row (its worker died between the
    trial's creation and its first heartbeat), started `age_s` seconds ago."""
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="s", directions=DIRECTIONS)
    trial = study.ask()
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    started = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # stored in UTC
    started -= datetime.timedelta(seconds=age_s)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE trial_id = :i"),
            {"t": started, "i": trial._trial_id},
        )
    engine.dispose()
    return study


def test_a_running_trial_without_a_heartbeat_row_older_than_grace_is_failed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    _sqlite_study_with_orphan(db, age_s=60)
    storage = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=3)
    study = optuna.load_study(study_name="s", storage=storage)
    optuna.storages.fail_stale_trials(study)
    trial = study.get_trials()[0]  # (a WAITING retry follows it)
    assert trial.state == TrialState.FAIL
    assert "heartbeat" in trial.user_attrs["fail_reason"]


def test_a_young_running_trial_without_a_heartbeat_row_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _sqlite_study_with_orphan(db, age_s=0)
    storage = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=30)
    study = optuna.load_study(study_name="s", storage=storage)
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[0].state == TrialState.RUNNING


# -- 8. concurrent records of runs -----------------------------------------------------------


@pytest.mark.slow
def test_eight_concurrent_runs_records_are_all_kept(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="s", directions=DIRECTIONS)
    script = textwrap.dedent(
        f"""
        import sys, optuna
        from search import records
        from search.storage import open_storage
        study = optuna.load_study(study_name="s", storage=open_storage("sqlite:///{db}"))
        records.append_run(study, study.user_attrs, {{"command": "run " + sys.argv[1]}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-c", script, str(k)], env=env) for k in range(8)]
    assert all(w.wait(timeout=120) == 0 for w in workers)
    from search import records

    stored = records.study_attrs(optuna.load_study(study_name="s", storage=f"sqlite:///{db}"))
    commands = sorted(r["command"] for r in records.read_runs(stored))
    assert commands == sorted(f"run {k}" for k in range(8))


def test_the_old_single_key_runs_record_is_still_read(tmp_path: Path) -> None:
    from search import records

    study = optuna.create_study(directions=DIRECTIONS)
    study.set_user_attr("runs", [{"command": "old"}])
    records.append_run(study, study.user_attrs, {"command": "new " + uuid.uuid4().hex})
    commands = [r["command"] for r in records.read_runs(records.study_attrs(study))]
    assert commands[0] == "old" and commands[1].startswith("new ")


def test_a_worker_waiting_for_a_dead_workers_trial_says_so_and_goes_on_after_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from search.run.budget import budget_left

    db = tmp_path / "s.db"
    dead = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=2)
    optuna.create_study(storage=dead, study_name="s", directions=DIRECTIONS).ask()  # then dies
    storage = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="s", storage=storage)
    with caplog.at_level("INFO", logger="search.run"):
        assert budget_left(study, 1)  # the dead trial is failed and retried: one is needed
    assert any("waiting:" in r.getMessage() and "2 s" in r.getMessage() for r in caplog.records)
    assert study.get_trials()[0].state == TrialState.FAIL


def test_an_orphan_without_a_heartbeat_row_does_not_hang_the_run(tmp_path: Path) -> None:
    from search.run.budget import budget_left

    db = tmp_path / "s.db"
    _sqlite_study_with_orphan(db, age_s=60)
    storage = open_storage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=3)
    assert budget_left(optuna.load_study(study_name="s", storage=storage), 1)


def test_the_stop_message_says_what_happened_to_the_trial(tmp_path: Path) -> None:
    from search.run.console import what_was_interrupted

    study = optuna.create_study(directions=DIRECTIONS)
    running = study.ask()
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    assert "none was marked FAIL" in what_was_interrupted(study, None)
    assert "was marked FAIL" in what_was_interrupted(study, failed.number)
    assert "left RUNNING" in what_was_interrupted(study, running.number)
