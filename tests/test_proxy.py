"""The gRPC storage proxy (`python -m search storage-proxy`, workers on `grpc://host:port`) and
the PostgreSQL driver (psycopg 3 for a bare `postgresql://`), on the real PostgreSQL fixture,
loopback only: several `python -m search run` workers through one proxy, a killed worker's
trial retried through it, and bad input refused with one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.errors import UsageError
from search.grpc_storage import HeartbeatGrpcStorage, parse_grpc_url
from search.run.budget import BudgetReached, budget_left, claim_budget
from search.storage import open_storage
from tests.pg_server import PostgresServer
from tests.test_distributed import (
    HEARTBEAT,
    TINY,
    _assert_consistent,
    _assert_only_surplus_beyond_the_budget,
    _finish,
    _search,
    _trials,
    _wait_for_second_trial,
)

REPO = Path(__file__).resolve().parents[1]
DIRECTIONS = ["maximize", "minimize"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _proxy_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search", "storage-proxy", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_proxy(storage_url: str) -> tuple[subprocess.Popen[str], str]:
    """A proxy on a free loopback port; its first line names the URL workers pass."""
    proxy = _proxy_cli("--storage", storage_url, "--port", "0")
    assert proxy.stdout is not None
    line = proxy.stdout.readline()
    assert line.startswith("storage-proxy: serving "), proxy.communicate()[1][-3000:]
    assert "vae-test-secret" not in line and "vae:***@" in line
    url = line.split("--storage ", 1)[1].split()[0]
    assert url.startswith("grpc://127.0.0.1:")
    return proxy, url


def _stop_proxy(proxy: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[str, str]:
    proxy.send_signal(signum)
    out, err = proxy.communicate(timeout=60)
    assert proxy.returncode == 0, err[-3000:]
    return out, err


@pytest.fixture
def proxied(fresh_postgres_url: str) -> Iterator[tuple[str, str]]:
    """(the proxy's grpc:// URL, the database URL it serves)."""
    proxy, url = _start_proxy(fresh_postgres_url)
    try:
        yield url, fresh_postgres_url
    finally:
        if proxy.poll() is None:
            _stop_proxy(proxy)


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- the proxy command -------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_proxy_serves_a_study_and_stops_on_a_signal_with_one_line(
    fresh_postgres_url: str, signum: int, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, url = _start_proxy(fresh_postgres_url)
    storage = open_storage(url)
    assert isinstance(storage, HeartbeatGrpcStorage)
    study = optuna.create_study(study_name="served", storage=storage, directions=DIRECTIONS)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.5), n_trials=3)
    from search import cli

    assert cli.main(["studies", "--storage", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["trials"]["complete"]) for s in listed] == [("served", 3)]
    out, err = _stop_proxy(proxy, signum)
    name = signal.Signals(signum).name
    assert out.strip().splitlines()[-1] == f"storage-proxy: stopped by {name}"
    assert err.strip() == ""
    # What went through the proxy is in the database itself.
    direct = optuna.load_study(study_name="served", storage=open_storage(fresh_postgres_url))
    assert [t.state for t in direct.get_trials()] == [TrialState.COMPLETE] * 3


def _refused(*args: str) -> str:
    proxy = _proxy_cli(*args)
    out, err = proxy.communicate(timeout=120)
    assert proxy.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_proxy_input_is_one_line_and_exit_2(tmp_path: Path, postgres_url: str) -> None:
    assert "needs --storage" in _refused()
    assert "is a proxy, not a database" in _refused("--storage", "grpc://127.0.0.1:13000")
    assert "journal" in _refused("--storage", f"journal:///{tmp_path}/s.log")
    assert "memory" in _refused("--storage", "memory:")
    assert "unsupported storage" in _refused("--storage", "nonsense://x")
    down = f"postgresql://vae:pw-secret@127.0.0.1:{_closed_port()}/db"
    line = _refused("--storage", down)
    assert "pw-secret" not in line and "127.0.0.1" in line
    assert "a port" in _refused("--storage", postgres_url, "--port", "70000")
    assert not list(tmp_path.iterdir())  # nothing created


def test_a_port_in_use_is_one_line_and_exit_2(proxied: tuple[str, str]) -> None:
    url, database = proxied
    _, port = parse_grpc_url(url)
    # Another proxy on the same port (gRPC would share it under SO_REUSEPORT) is refused.
    line = _refused("--storage", database, "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    "url",
    ["grpc://", "grpc://127.0.0.1", "grpc://127.0.0.1:0", "grpc://h:1/db", "grpc://u:p@h:1"],
)
def test_malformed_proxy_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError, match="grpc://host:port"):
        open_storage(url)


@pytest.mark.slow
def test_no_proxy_at_the_address_is_a_usage_error_within_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(UsageError, match="no storage proxy answers"):
        open_storage(f"grpc://127.0.0.1:{_closed_port()}", heartbeat_interval=1)
    assert time.monotonic() - started < 30


# -- heartbeats through the proxy, without TensorFlow ------------------------------------------

VICTIM = textwrap.dedent(
    """
    import os, signal, sys, warnings
    warnings.simplefilter("ignore")
    import optuna
    from search.storage import open_storage

    storage = open_storage(sys.argv[1], heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name="hb", storage=storage)

    def objective(trial):
        trial.suggest_int("latent_dim", 1, 32)
        trial.set_user_attr("curve", [{"epoch": 1}])
        os.kill(os.getpid(), signal.SIGKILL)  # dies in the middle of the trial

    study.optimize(objective, n_trials=1)
    """
)


@pytest.mark.slow
def test_a_dead_workers_trial_is_failed_and_retried_through_the_proxy(
    proxied: tuple[str, str],
) -> None:
    url, _ = proxied
    optuna.create_study(study_name="hb", storage=open_storage(url), directions=DIRECTIONS)
    victim = subprocess.run(
        [sys.executable, "-c", VICTIM, url],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert victim.returncode == -9, victim.stderr
    time.sleep(3)  # past the 2 s grace period

    study = optuna.load_study(
        study_name="hb", storage=open_storage(url, heartbeat_interval=1, grace_period=2)
    )
    study.optimize(lambda t: (t.suggest_int("latent_dim", 1, 32) / 32, 0.1), n_trials=1)
    dead, retried = study.get_trials()
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["fail_reason"].startswith("worker died")
    assert retried.state == TrialState.COMPLETE and retried.params == dead.params
    assert retried.system_attrs["retry_history"] == [dead.number]


@pytest.mark.slow
def test_a_live_trial_is_not_failed_through_the_proxy(proxied: tuple[str, str]) -> None:
    url, _ = proxied
    storage = open_storage(url, heartbeat_interval=1, grace_period=4)
    study = optuna.create_study(study_name="live", storage=storage, directions=DIRECTIONS)

    def slow(trial: optuna.Trial) -> tuple[float, float]:
        time.sleep(9)  # over twice the grace period: only the heartbeat keeps it alive
        other = open_storage(url, heartbeat_interval=1, grace_period=4)
        optuna.storages.fail_stale_trials(optuna.load_study(study_name="live", storage=other))
        return 0.5, 0.5

    study.optimize(slow, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE


# -- psycopg 3: the URL works in the user's own tools too ---------------------------------------

PLAIN_LOAD = textwrap.dedent(
    """
    import sys, optuna
    study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
    print(len(study.get_trials()), study._storage._backend.engine.dialect.driver)
    """
)


def test_a_bare_postgresql_url_opens_in_plain_optuna(fresh_postgres_url: str) -> None:
    """A study made through vae-search opens with `optuna.load_study(storage=URL)` in a process
    that never imports vae-search, so nothing rewrites the URL there."""
    assert fresh_postgres_url.startswith("postgresql://")
    storage = open_storage(fresh_postgres_url)
    study = optuna.create_study(study_name="plain", storage=storage, directions=DIRECTIONS)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.5), n_trials=2)
    assert storage.engine.dialect.driver == "psycopg"  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", PLAIN_LOAD, fresh_postgres_url, "plain"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "psycopg"]


def test_a_psycopg2_url_still_works(fresh_postgres_url: str) -> None:
    """`postgresql+psycopg2://` (what earlier versions wrote in docs and scripts) opens the same
    study: through psycopg2 where it is installed, else rewritten to psycopg 3."""
    url = fresh_postgres_url.replace("postgresql://", "postgresql+psycopg2://")
    storage = open_storage(url)
    study = optuna.create_study(study_name="old", storage=storage, directions=DIRECTIONS)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.5), n_trials=1)
    try:
        import psycopg2  # noqa: F401

        expected = "psycopg2"
    except ImportError:
        expected = "psycopg"
    assert storage.engine.dialect.driver == expected  # type: ignore[attr-defined]
    again = optuna.load_study(study_name="old", storage=open_storage(fresh_postgres_url))
    assert len(again.get_trials()) == 1


# -- several `run` workers through one proxy, on the real PostgreSQL ---------------------------


@pytest.mark.slow
def test_three_workers_through_the_proxy_lose_and_duplicate_nothing(
    proxied: tuple[str, str], postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url, database = proxied
    held = postgres_server.connections(_database(database))
    run = _search(
        tmp_path,
        *TINY,
        "--trials",
        "4",
        "--workers",
        "3",
        "--study",
        "proxied",
        "--storage",
        url,
        *HEARTBEAT,
    )
    most = held
    while run.poll() is None:
        most = max(most, postgres_server.connections(_database(database)))
        time.sleep(0.5)
    code, out, err = _finish(run)
    assert code == 0, err[-3000:]
    for index in range(3):
        assert f"[w{index}] " in out + err
    trials = _trials(database, "proxied")  # read from the database, not through the proxy
    _assert_consistent(trials, complete=4)
    _assert_only_surplus_beyond_the_budget(trials, budget=4, workers=3)
    # Only the proxy talks to the database: its pool, whatever the number of workers.
    assert most <= 15, most


@pytest.mark.slow  # one 2 s budget poll, and a fresh database
def test_two_workers_that_see_the_last_slot_at_once_train_it_once_through_the_proxy(
    proxied: tuple[str, str],
) -> None:
    """The extra trial of the three-worker run above, made deterministic.

    Worker A finished a trial and checked the budget (one place left); worker B finished
    one at the same moment and checked before A had created its next trial. Both checks say
    "one more", so both create a trial: a check and a create are two requests, and no
    storage (proxy, journal, database) makes them one. The later trial by number waits while
    the earlier one runs (its worker might die), then is given back unrun: the study holds
    one trial beyond its budget, and exactly the budget trains.
    """
    url, database = proxied
    first = optuna.create_study(
        study_name="last-slot", storage=open_storage(url), directions=DIRECTIONS
    )
    second = optuna.load_study(study_name="last-slot", storage=open_storage(url))
    assert budget_left(first, 1) and budget_left(second, 1)  # both see the slot free
    b_created, b_result = threading.Event(), []

    def worker_b() -> None:
        def objective(trial: optuna.Trial) -> tuple[float, float]:
            b_created.set()
            claim_budget(second, trial, 1)  # A's trial is ahead: waits for it
            return trial.suggest_float("x", 0, 1), 0.5

        second.optimize(objective, n_trials=1, catch=(BudgetReached,))
        b_result.append(second.get_trials()[-1])

    def objective_a(trial: optuna.Trial) -> tuple[float, float]:
        claim_budget(first, trial, 1)  # nothing ahead of it: it trains
        thread.start()
        assert b_created.wait(60)  # B's trial exists while A's still runs
        return trial.suggest_float("x", 0, 1), 0.5

    thread = threading.Thread(target=worker_b)
    first.optimize(objective_a, n_trials=1)
    thread.join(60)
    assert not thread.is_alive()

    trials = _trials(database, "last-slot")  # read from the database, not through the proxy
    assert [(t.number, t.state) for t in trials] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.FAIL),
    ]
    assert b_result[0].number == 1 and trials[1].params == {}  # it never sampled or trained
    _assert_only_surplus_beyond_the_budget(trials, budget=1, workers=2)
    assert not budget_left(second, 1)


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_through_the_proxy(
    proxied: tuple[str, str], tmp_path: Path
) -> None:
    url, database = proxied
    args = [*TINY, "--study", "kill", "--storage", url, *HEARTBEAT]
    victim = _search(tmp_path, *args, "--trials", "3")
    finished_before = _wait_for_second_trial(url, "kill", victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    dead = [t for t in _trials(url, "kill") if t.state == TrialState.RUNNING]
    assert len(dead) == 1

    code, _, err = _finish(_search(tmp_path, *args, "--target-total", "3", "--worker-index", "1"))
    assert code == 0, err[-3000:]

    trials = _trials(database, "kill")
    _assert_consistent(trials, complete=3)
    by_number = {t.number: t for t in trials}
    for t in finished_before:
        assert by_number[t.number].values == t.values
    died = by_number[dead[0].number]
    assert died.state == TrialState.FAIL
    assert died.user_attrs["fail_reason"].startswith("worker died")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == died.number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE and retries[0].params == died.params
