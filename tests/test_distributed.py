"""Several workers on one study, for real: `python -m search run` processes on a real
PostgreSQL server and on the journal file storage, killed and interrupted mid-trial.

Every run is the smoke preset cut further down (64 training images, 1 epoch, no pruning, no
saved models) so the whole module fits CI's two cores.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.errors import UsageError
from search.storage import open_storage
from search.workers import (
    WORKER_INDEX_ENV,
    GpuDevice,
    detect_gpus,
    plan_workers,
    worker_environments,
)

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--preset",
    "smoke",
    "--data",
    "bundled",
    "--subset",
    "64",
    "--epochs",
    "1",
    "--no-pruning",
    "--keep-models",
    "none",
    "--no-report",
    "--seed",
    "1",
    "--confirm",
    "0",  # exactly the trials asked for; test_verdicts.py covers confirming after workers
]
# The grace period is what the kill test waits for; it is 20 missed heartbeats, so a live
# trial is not failed as dead even when several TensorFlow workers share two loaded cores.
HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "20"]
RUN_TIMEOUT_S = 600

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _search(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search", "run", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = RUN_TIMEOUT_S) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"run did not finish in {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


# Each expensive scenario runs on one backend: the one it matters most for. The other
# backend's share of it is covered without TensorFlow in test_storage.py (heartbeat retries
# and concurrent writers on both).
@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"journal:///{tmp_path}/study.log"


def _trials(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=open_storage(url)).get_trials()


def _assert_consistent(trials: list[optuna.trial.FrozenTrial], complete: int) -> None:
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == complete, states
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0, states
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len({t._trial_id for t in trials})
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in done}) == complete  # no config twice
    for t in done:
        assert len(t.values) == 2 and "curve" in records.trial_attrs(t)


def _assert_only_surplus_beyond_the_budget(
    trials: list[optuna.trial.FrozenTrial], budget: int, workers: int
) -> None:
    """Exactly the budget trained. Two workers that checked the budget at the same moment
    both create a trial; the later one is given back unrun (docs/scaling.md): under load
    this happens (seen through the proxy, 1 run in 2), so it is allowed, and nothing else."""
    extra = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(extra) <= workers - 1, [(t.number, t.state) for t in extra]
    for t in extra:
        attrs = records.trial_attrs(t)
        assert t.state == TrialState.FAIL and records.is_surplus(attrs), (t.number, attrs)
        assert "curve" not in attrs and t.values is None  # it never trained
    assert len(trials) == budget + len(extra)


def test_three_workers_share_one_budget_and_train_exactly_it(
    journal_url: str, tmp_path: Path
) -> None:
    """`--workers` on its default storage: exactly the budget trains; the user sees no failure."""
    storage_url = journal_url
    code, out, err = _finish(
        _search(
            tmp_path,
            *TINY,
            "--trials",
            "3",
            "--workers",
            "3",
            "--study",
            "three",
            "--storage",
            storage_url,
            *HEARTBEAT,
        )
    )
    assert code == 0, err[-3000:]
    for index in range(3):
        assert f"[w{index}] " in out + err
    trials = _trials(storage_url, "three")
    _assert_consistent(trials, complete=3)
    _assert_only_surplus_beyond_the_budget(trials, budget=3, workers=3)
    summary = [line for line in out.splitlines() if line.startswith("study 'three':")]
    assert len(summary) == 1 and "fail" not in summary[0], out[-3000:]


def _wait_for_second_trial(url: str, study: str, worker: subprocess.Popen[str]) -> list:
    """Block until `worker` finished one trial and is training the next; return the finished."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    me = f"{socket.gethostname()}:{worker.pid}"
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()[1][-3000:]
        try:
            trials = _trials(url, study)
        except KeyError:  # the study is not created yet
            trials = []
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [
            t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("worker") == me
        ]
        if done and running:
            return done
        time.sleep(0.2)
    pytest.fail("the worker never reached its second trial")


def test_a_killed_workers_trial_is_retried_and_nothing_is_lost(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    """Many machines on PostgreSQL: one worker is killed, another takes its trial over."""
    storage_url = fresh_postgres_url
    args = [*TINY, "--study", "kill", "--storage", storage_url, *HEARTBEAT]
    victim = _search(tmp_path, *args, "--trials", "3")
    finished_before = _wait_for_second_trial(storage_url, "kill", victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    dead = [t for t in _trials(storage_url, "kill") if t.state == TrialState.RUNNING]
    assert len(dead) == 1

    # Another worker of the same 3-trial budget takes over, started as `--workers` starts one.
    code, _, err = _finish(_search(tmp_path, *args, "--target-total", "3", "--worker-index", "1"))
    assert code == 0, err[-3000:]

    trials = _trials(storage_url, "kill")
    _assert_consistent(trials, complete=3)
    by_number = {t.number: t for t in trials}
    for t in finished_before:  # no completed trial lost or changed
        assert by_number[t.number].state == TrialState.COMPLETE
        assert by_number[t.number].values == t.values
    died = by_number[dead[0].number]
    assert died.state == TrialState.FAIL
    assert died.user_attrs["fail_reason"].startswith("worker died")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == died.number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE and retries[0].params == died.params


def test_sigint_to_the_parent_stops_every_worker_cleanly(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/study.log"
    parent = _search(
        tmp_path,
        *TINY,
        "--trials",
        "4",
        "--workers",
        "2",
        "--study",
        "stop",
        "--storage",
        url,
        *HEARTBEAT,
    )
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:  # both workers are training
        assert parent.poll() is None, parent.communicate()[1][-3000:]
        try:
            running = [
                t
                for t in _trials(url, "stop")
                if t.state == TrialState.RUNNING and "worker" in t.user_attrs
            ]
        except KeyError:
            running = []
        if len(running) == 2:
            break
        time.sleep(0.2)
    parent.send_signal(signal.SIGINT)
    code, _, err = _finish(parent, timeout=180)
    assert code == 130, err[-3000:]
    trials = _trials(url, "stop")
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    interrupted = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("fail_reason", "").startswith("interrupted")
    ]
    assert len(interrupted) >= 1


@pytest.mark.parametrize("workers", ["1", "3"])
def test_unreachable_database_is_one_line_and_exit_2(workers: str, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    url = f"postgresql://vae:topsecret@127.0.0.1:{port}/nowhere"
    code, out, err = _finish(
        _search(
            tmp_path,
            *TINY,
            "--trials",
            "2",
            "--workers",
            workers,
            "--study",
            "down",
            "--storage",
            url,
        ),
        timeout=120,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "topsecret" not in err + out


# -- the `--workers` parent's own checks -----------------------------------------------------


def test_detect_gpus_is_empty_without_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == []


def test_plan_workers_checks_counts_and_gpus() -> None:
    present = detect_gpus()
    assert plan_workers(None) == (max(1, len(present)), present)
    assert plan_workers(3) == (3, present)
    absent = max((d.index for d in present), default=-1) + 1
    with pytest.raises(UsageError, match=f"GPU {absent} not found"):
        plan_workers(2, [absent])
    for bad in (0, -1):
        with pytest.raises(UsageError):
            plan_workers(bad)
    with pytest.raises(UsageError):
        plan_workers(2, [])


def test_worker_environments_split_cpus_or_pin_gpus() -> None:
    cores = len(os.sched_getaffinity(0))
    cpu = worker_environments(2, [])
    assert [e[WORKER_INDEX_ENV] for e in cpu] == ["0", "1"]
    assert all(e["TF_NUM_INTRAOP_THREADS"] == str(max(1, cores // 2)) for e in cpu)
    assert all(e["OMP_NUM_THREADS"] == e["TF_NUM_INTRAOP_THREADS"] for e in cpu)
    gpus = [GpuDevice(i, "NVIDIA L4") for i in (0, 1)]
    gpu = worker_environments(3, gpus)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in gpu] == ["0", "1", "0"]


def test_a_gpu_that_is_not_there_is_one_line_and_exit_2(tmp_path: Path) -> None:
    absent = str(max((d.index for d in detect_gpus()), default=-1) + 1)
    code, _, err = _finish(
        _search(
            tmp_path, *TINY, "--trials", "2", "--workers", "2", "--gpus", absent, "--study", "nogpu"
        ),
        timeout=120,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and absent in lines[0], err
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())


# -- `--workers auto`: several workers on a CPU ------------------------------------------------


def test_workers_auto_without_a_gpu_starts_one_worker_per_core(tmp_path: Path) -> None:
    """`--workers auto`, no GPU: min(cores, trials) worker processes on the journal storage."""
    from search.workers import cpu_cores

    expected = min(cpu_cores(), 3)
    env = {**_env(), "CUDA_VISIBLE_DEVICES": "-1"}  # CUDA's own "no GPU", even on a GPU host
    args = [*TINY, "--trials", "3", "--workers", "auto", "--study", "auto"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    code, out, err = _finish(proc)
    assert code == 0, err[-3000:]
    assert f"workers: {expected} (auto: " in err, err[-3000:]
    if expected == 1:  # a one-core machine: the same run in this process, on SQLite
        assert "1 CPU core" in err and (tmp_path / "studies" / "auto.db").exists()
        return
    assert f"starting {expected} workers (CPU, " in out, out
    for index in range(expected):  # every worker started and chose the CPU
        assert f"[w{index}] device: CPU" in err, err[-3000:]
    names = sorted(p.name for p in (tmp_path / "studies").iterdir() if p.is_file())
    assert names == ["auto.log", "auto.log.flock"]
    _assert_consistent(_trials(f"journal:///{tmp_path}/studies/auto.log", "auto"), complete=3)


def test_the_cpu_default_keeps_one_process_where_several_cannot_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search import workers
    from search.run.options import RunOptions
    from search.run.setup import choose_cpu_workers

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(workers, "cpu_cores", lambda: 4)

    def chosen(requested: int, **options: object) -> tuple[int | None, str | None]:
        run = RunOptions(study="s", workers_auto=True, **options)  # type: ignore[arg-type]
        line = choose_cpu_workers(run, requested)
        return run.workers, line

    assert chosen(10)[0] == 4
    assert chosen(3)[0] == 3  # no idle worker for want of trials
    assert chosen(10, storage="journal:///elsewhere.log")[0] == 4
    assert chosen(10, storage="postgresql://u@h/db")[0] == 4
    one = {
        "1 trial to run": chosen(1),
        "SQLite storage": chosen(10, storage="sqlite:///x.db"),
        "in-memory": chosen(10, storage="sqlite:///:memory:"),
    }
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "s.db").write_bytes(b"")  # a study begun by one process
    one["the study lives in"] = chosen(10)
    for why, (count, line) in one.items():
        assert count == 1 and line is not None and why in line, (why, line)
    # An explicit count, or GPUs deciding, leaves it alone.
    given = RunOptions(study="s", workers=3)
    assert choose_cpu_workers(given, 10) is None and given.workers == 3
    monkeypatch.setattr(workers, "cpu_cores", lambda: 1)
    (tmp_path / "studies" / "s.db").unlink()
    assert chosen(10) == (1, "workers: 1 (auto: 1 CPU core; no GPU, 1 CPU cores)")


def test_without_workers_auto_a_cpu_run_stays_one_process(tmp_path: Path) -> None:
    from search.run.options import RunOptions, validate
    from search.run.setup import plan_placement

    options = RunOptions(study="s", workers=None, gpus=None)
    validate(options)
    plan_placement(options)
    if not options.workers_auto and not detect_gpus():
        assert options.workers == 1
    auto = RunOptions(study="s", workers_auto=True)
    validate(auto)
    plan_placement(auto)
    assert auto.workers_auto == (not detect_gpus())


def test_workers_option_takes_auto_or_a_count() -> None:
    from search.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["run"]).workers is None  # one per GPU, or 1 without GPUs
    assert parse(["run", "--workers", "AUTO"]).workers == "auto"
    assert parse(["run", "--workers", "1"]).workers == 1
    with pytest.raises(UsageError, match=r"auto or a whole number 1\.\.256"):
        parse(["run", "--workers", "0"])
