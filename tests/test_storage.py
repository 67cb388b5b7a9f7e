"""search.storage against real storages: SQLite files, journal files and a real PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from search import records
from search.errors import UsageError
from search.storage import artifact_store as make_artifact_store
from search.storage import (
    default_storage_url,
    is_shareable,
    open_storage,
    redact_url,
    validate_study_name,
)

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = ["maximize", "minimize"]


# -- names and URLs --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist-vae", "a", "run_2.v3", "A" * 100, "0abc"])
def test_valid_study_names_are_returned(name: str) -> None:
    assert validate_study_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "a..b", ".hidden", "-x", "a b", "A" * 101, "x\\y", "é", "a\nb"]
)
def test_bad_study_names_are_one_line_usage_errors(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_study_name(name)
    assert "\n" not in str(info.value)


def test_default_storage_is_sqlite_under_studies_and_journal_for_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_storage_url("s") == "sqlite:///studies/s.db"
    assert default_storage_url("s", parallel=True) == "journal:///studies/s.log"
    with pytest.raises(UsageError):
        default_storage_url("../s")

    # A study created by parallel workers is found again by later one-process commands.
    optuna.create_study(
        study_name="p",
        storage=open_storage(default_storage_url("p", parallel=True)),
        directions=DIRECTIONS,
    )
    assert default_storage_url("p") == "journal:///studies/p.log"

    # A study already in SQLite is not silently split into a second storage.
    optuna.create_study(study_name="q", storage=open_storage(default_storage_url("q")))
    with pytest.raises(UsageError, match="already lives in"):
        default_storage_url("q", parallel=True)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "garbage",
        "http://example.com/db",
        "foo://x",
        "sqlite:/x.db",
        "journal://x.log",
        "journal:///",
        "redis://localhost:6379",
    ],
)
def test_bad_urls_name_the_accepted_forms(url: str) -> None:
    with pytest.raises(UsageError) as info:
        open_storage(url)
    message = str(info.value)
    assert "\n" not in message
    assert "sqlite:///" in message or "journal:///" in message


def test_redact_url_hides_passwords_only() -> None:
    assert redact_url("postgresql+psycopg2://vae:s3cr:et@db.example:5432/s") == (
        "postgresql+psycopg2://vae:***@db.example:5432/s"
    )
    assert "hunter2" not in redact_url("mysql://u@h/db?password=hunter2&x=1")
    for plain in ("sqlite:///studies/a.db", "postgresql://u@h/db", "journal:///x.log"):
        assert redact_url(plain) == plain


def test_is_shareable() -> None:
    for url in ("memory:", "sqlite://", "sqlite:///:memory:"):
        assert not is_shareable(url)
    for url in ("sqlite:///studies/a.db", "journal:///a.log", "a.log", "postgresql://u@h/d"):
        assert is_shareable(url)
    assert isinstance(open_storage("memory:"), optuna.storages.InMemoryStorage)


def test_heartbeat_settings_are_checked() -> None:
    with pytest.raises(UsageError):
        open_storage("memory:", heartbeat_interval=0)
    with pytest.raises(UsageError):
        open_storage("memory:", heartbeat_interval=5, grace_period=5)
    with pytest.raises(UsageError):
        open_storage("memory:", grace_period=10)


def test_artifact_store_creates_its_folder(tmp_path: Path) -> None:
    store = make_artifact_store(tmp_path / "a" / "artifacts")
    assert isinstance(store, FileSystemArtifactStore)
    assert (tmp_path / "a" / "artifacts").is_dir()


# -- SQLite and journal files ----------------------------------------------------------------


def _round_trip(url: str) -> None:
    study = optuna.create_study(study_name="rt", storage=open_storage(url), directions=DIRECTIONS)
    study.set_user_attr("created_by", "vae-search")
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.5), n_trials=3)
    again = optuna.load_study(study_name="rt", storage=open_storage(url, must_exist=True))
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 3
    assert again.user_attrs["created_by"] == "vae-search"


def test_sqlite_creates_its_folder_and_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _round_trip("sqlite:///deep/er/s.db")
    assert (tmp_path / "deep" / "er" / "s.db").is_file()
    _round_trip(f"sqlite:///{tmp_path}/abs/s.db")
    assert (tmp_path / "abs" / "s.db").is_file()


@pytest.mark.parametrize("spelling", ["journal:///{p}", "{p}"])
def test_journal_file_round_trips(tmp_path: Path, spelling: str) -> None:
    path = tmp_path / "j" / "study.log"
    _round_trip(spelling.format(p=path))
    assert path.is_file()


def test_must_exist_creates_nothing(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/none.db", f"journal:///{tmp_path}/none.log"):
        with pytest.raises(UsageError, match="no study storage"):
            open_storage(url, must_exist=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".db", ".log"])
def test_a_file_of_the_wrong_kind_is_a_usage_error_and_stays_untouched(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"notes{suffix}"
    content = b"these are not optuna records\x00\xff{\n"
    path.write_bytes(content)
    url = f"sqlite:///{path}" if suffix == ".db" else str(path)
    with pytest.raises(UsageError) as info:
        open_storage(url)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == content


# -- database servers ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: nothing listens there


@pytest.mark.parametrize(
    "template",
    [
        "postgresql+psycopg2://vae:pw-secret@127.0.0.1:{port}/db",
        "postgresql://vae:pw-secret@127.0.0.1:{port}/db",
        "postgres://vae:pw-secret@127.0.0.1:{port}/db",
    ],
)
def test_unreachable_database_is_a_usage_error(template: str) -> None:
    url = template.format(port=_closed_port())
    with pytest.raises(UsageError) as info:
        open_storage(url, heartbeat_interval=30)
    message = str(info.value)
    assert "\n" not in message and "pw-secret" not in message
    assert "127.0.0.1" in message


OPEN_STORAGE = textwrap.dedent(
    """
    import sys
    from search.errors import UsageError
    from search.storage import open_storage

    try:
        open_storage(sys.argv[1])
    except UsageError as err:
        print(err)
    """
)


@pytest.mark.slow
def test_a_server_that_never_answers_times_out() -> None:
    """A socket that listens but never accepts: the TCP handshake succeeds (the kernel does
    it), then nothing ever answers PostgreSQL's startup message."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        # Without the connect timeout libpq waits for an answer for ever, inside C code that
        # pytest-timeout cannot interrupt; so the attempt runs in a child process, and the
        # subprocess limit (not a wall-clock assertion) turns a hang into a failure.
        result = subprocess.run(
            [sys.executable, "-c", OPEN_STORAGE, f"postgresql://vae:pw-secret@127.0.0.1:{port}/db"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    message = result.stdout.strip()
    assert "\n" not in message and "pw-secret" not in message
    assert "timeout" in message.lower(), message


def test_mysql_without_a_server_or_driver_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        open_storage(f"mysql+pymysql://u:p@127.0.0.1:{_closed_port()}/db")


def test_wrong_password_is_a_usage_error(postgres_url: str) -> None:
    bad = postgres_url.replace(":vae-test-secret@", ":wrong@")
    with pytest.raises(UsageError) as info:
        open_storage(bad)
    assert "wrong" not in str(info.value)


def test_postgres_round_trip(fresh_postgres_url: str) -> None:
    _round_trip(fresh_postgres_url)


def test_workers_opening_a_fresh_database_together_all_succeed(fresh_postgres_url: str) -> None:
    code = "import sys; from search.storage import open_storage; open_storage(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, fresh_postgres_url],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


# -- many writers on one journal file --------------------------------------------------------

JOURNAL_WRITER = textwrap.dedent(
    """
    import sys, time, warnings
    warnings.simplefilter("ignore")
    import optuna
    from search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url, n_trials = sys.argv[1], int(sys.argv[2])
    started = time.monotonic()  # after the imports, whose time depends on the machine's load
    storage = open_storage(url, heartbeat_interval=1, grace_period=60)
    study = optuna.load_study(study_name="stress", storage=storage)
    study.optimize(
        lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=n_trials
    )
    print(f"storage seconds: {time.monotonic() - started:.3f}")
    """
)


def test_six_writers_on_one_journal_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """6 processes x 30 trials, heartbeats on, no TensorFlow: every write goes through the
    journal's file lock (Optuna's default lock crashed writers in bench/results/storage.md)."""
    url = f"journal:///{tmp_path}/stress.log"
    optuna.create_study(study_name="stress", storage=open_storage(url), directions=DIRECTIONS)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", JOURNAL_WRITER, url, "30"],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="stress", storage=open_storage(url)).get_trials()
    assert len(trials) == 180
    assert sorted(t.number for t in trials) == list(range(180))
    assert len({t._trial_id for t in trials}) == 180
    assert all(t.state == TrialState.COMPLETE for t in trials), Counter(t.state for t in trials)


DIES_HOLDING_THE_LOCK = textwrap.dedent(
    """
    import os, signal, sys
    from search.storage import open_storage

    storage = open_storage(sys.argv[1])
    storage._backend._lock.acquire()  # what every append does first (private to Optuna)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_writer_killed_holding_the_journal_lock_blocks_no_one(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/stress.log"
    optuna.create_study(study_name="stress", storage=open_storage(url), directions=DIRECTIONS)
    victim = subprocess.run(
        [sys.executable, "-c", DIES_HOLDING_THE_LOCK, url], cwd=REPO, timeout=120, check=False
    )
    assert victim.returncode == -9
    # The kernel drops an flock with its holder, so the next writer goes ahead at once. Optuna's
    # default symlink lock outlives its holder and makes every writer wait 30 s before it
    # breaks it. The writer times its storage work itself, after its imports (which a loaded
    # machine can slow to any length): that, not the process's wall time, must stay under 30 s.
    writer = subprocess.run(
        [sys.executable, "-c", JOURNAL_WRITER, url, "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert writer.returncode == 0, writer.stderr[-3000:]
    seconds = float(writer.stdout.split("storage seconds:")[1])
    assert seconds < 30, f"the writer waited {seconds:.1f} s: the dead holder's lock held it"
    trials = optuna.load_study(study_name="stress", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE]


# -- heartbeats: a worker that dies in a trial -----------------------------------------------

VICTIM = textwrap.dedent(
    """
    import os, signal, sys, warnings
    warnings.simplefilter("ignore")
    import optuna
    from search.storage import open_storage

    max_retry = int(sys.argv[2])
    storage = open_storage(sys.argv[1], heartbeat_interval=1, grace_period=2, max_retry=max_retry)
    study = optuna.load_study(study_name="hb", storage=storage)

    def objective(trial):
        trial.suggest_int("latent_dim", 1, 32)
        trial.set_user_attr("curve", [{"epoch": 1}])
        os.kill(os.getpid(), signal.SIGKILL)  # dies in the middle of the trial

    study.optimize(objective, n_trials=1)
    """
)


def _die_in_a_trial(url: str, max_retry: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", VICTIM, url, str(max_retry)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == -9, result.stderr


@pytest.fixture(params=["postgresql", "journal", "sqlite"])
def heartbeat_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("fresh_postgres_url"))
    if request.param == "journal":
        return f"journal:///{tmp_path}/hb.log"
    return f"sqlite:///{tmp_path}/hb.db"


@pytest.mark.slow
def test_a_dead_workers_trial_fails_and_is_retried(heartbeat_url: str) -> None:
    optuna.create_study(study_name="hb", storage=open_storage(heartbeat_url), directions=DIRECTIONS)
    _die_in_a_trial(heartbeat_url, max_retry=3)
    time.sleep(3)  # past the 2 s grace period

    storage = open_storage(heartbeat_url, heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="hb", storage=storage)
    study.optimize(lambda t: (t.suggest_int("latent_dim", 1, 32) / 32, 0.1), n_trials=1)

    dead, retried = study.get_trials()
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["fail_reason"].startswith("worker died")
    assert retried.state == TrialState.COMPLETE
    assert retried.params == dead.params
    assert retried.system_attrs["retry_history"] == [dead.number]
    assert "curve" not in records.trial_attrs(
        retried
    )  # the dead attempt's measurements stay with it


@pytest.mark.parametrize("kind", ["postgresql", "journal"])
@pytest.mark.slow
def test_retries_are_bounded(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    heartbeat_url = (
        str(request.getfixturevalue("fresh_postgres_url"))
        if kind == "postgresql"
        else f"journal:///{tmp_path}/hb.log"
    )
    optuna.create_study(study_name="hb", storage=open_storage(heartbeat_url), directions=DIRECTIONS)
    _die_in_a_trial(heartbeat_url, max_retry=1)  # trial 0 dies
    time.sleep(3)
    _die_in_a_trial(heartbeat_url, max_retry=1)  # fails 0, retries it as 1, which dies too
    time.sleep(3)
    storage = open_storage(heartbeat_url, heartbeat_interval=1, grace_period=2, max_retry=1)
    study = optuna.load_study(study_name="hb", storage=storage)
    optuna.storages.fail_stale_trials(study)

    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.FAIL]  # no third attempt is queued


@pytest.mark.slow
def test_a_live_trial_is_not_failed(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/live.log"
    # Grace 4 s = 3 heartbeats may be late (a loaded machine) before the trial counts as dead.
    storage = open_storage(url, heartbeat_interval=1, grace_period=4)
    study = optuna.create_study(study_name="live", storage=storage, directions=DIRECTIONS)

    def slow(trial: optuna.Trial) -> tuple[float, float]:
        time.sleep(9)  # over twice the grace period: only the heartbeat keeps it alive
        other = open_storage(url, heartbeat_interval=1, grace_period=4)
        optuna.storages.fail_stale_trials(optuna.load_study(study_name="live", storage=other))
        return 0.5, 0.5

    study.optimize(slow, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE
    assert os.path.getsize(f"{tmp_path}/live.log") > 0
