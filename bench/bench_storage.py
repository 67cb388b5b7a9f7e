"""Storage and sampler overhead of a study, without training.

What a trial costs outside training: the sampler's suggestion and every storage round trip the
runner makes (create the trial, heartbeat, six params, the user attrs a trial records, the
values). The objective returns at once, so all of the measured time is overhead.

For SQLite, the journal file and PostgreSQL (a throwaway server started like the test fixture,
with fsync on), and for 1, 2 and 4 worker processes sharing one study, 200 trials in total:
trials per second, overhead per trial (worker-seconds per trial), and scaling efficiency
(throughput with N workers / (N x throughput with 1)). Storages are opened with
`search.storage.open_storage` and heartbeats on, exactly as `run` opens them.

It also checks each run for lost trials (fewer than 200 finished), duplicated trial numbers,
trials left RUNNING, trials missing user attrs, and worker errors; then a stress run with 8
writers per storage does the same with a heartbeat every second, on the journal also with
Optuna's default (symlink) writer lock, the one `open_storage` replaces with `flock`.

The gRPC storage proxy section (`--only proxy` runs it alone): N worker processes on one
PostgreSQL study, each connected directly or through `python -m search storage-proxy` (workers
on `grpc://127.0.0.1:P`), random sampler, heartbeats on: the database connections open while
they run (`pg_stat_activity`, sampled every 0.1 s), overhead and worker CPU per trial, and the
proxy's own CPU per trial.

Writes the whole of bench/results/storage.md (and storage.json): every sentence in it is
generated from measured numbers. `--only proxy` measures the proxy section and rewrites the
other sections from the numbers storage.json already holds.

Usage: python bench/bench_storage.py [--trials 200] [--workers 1,2,4] [--stress-trials 400]
       [--proxy-trials 200] [--proxy-workers 1,4,8] [--only proxy]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
from common import RESULTS, markdown_table, timestamp, write_result  # noqa: E402
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock  # noqa: E402

from search.heartbeat import MAX_RETRY, RetryStaleTrial  # noqa: E402
from search.journal import HeartbeatJournalStorage  # noqa: E402
from search.storage import open_storage  # noqa: E402

STUDY = "bench"
TARGET_MS = 50.0  # PostgreSQL overhead per trial
# Bench-only URL scheme: the journal exactly as `open_storage` opens it, but with Optuna's
# default symlink lock instead of `flock`, to show why the lock was replaced.
SYMLINK_JOURNAL = "journal-symlink:///"
USER_ATTRS = (
    "curve",
    "val_ssim",
    "val_mse",
    "train_ssim",
    "train_mse",
    "test_ssim",
    "test_mse",
    "epochs_run",
    "wall_time_s",
    "worker",
)


@dataclass
class Result:
    storage: str
    sampler: str
    records: bool
    workers: int
    trials: int
    seconds: float
    cpu_seconds: float
    load: float
    complete: int
    duplicates: int
    running: int
    missing_attrs: int
    failed_alive: int
    errors: list[str]

    @property
    def trials_per_s(self) -> float:
        return self.complete / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / max(self.complete, 1)

    @property
    def overhead_ms(self) -> float:
        return 1000 * self.seconds * self.workers / max(self.complete, 1)


def objective(trial: optuna.Trial, records: bool = False) -> tuple[float, float]:
    k = trial.suggest_int("latent_dim", 1, 32)
    trial.suggest_int("n_layers", 1, 4)
    trial.suggest_categorical("filters", [8, 16, 32, 64])
    trial.suggest_categorical("dense_units", [16, 32, 64, 128, 256])
    trial.suggest_categorical("loss", ["bce", "mse"])
    beta = trial.suggest_float("beta", 0.25, 4.0, log=True)
    ssim, mse = 1 - 1 / (k + 1), 0.01 * beta + 0.1 / k
    for key in USER_ATTRS if records else ():
        trial.set_user_attr(key, [{"epoch": 1, "val_ssim": ssim}] if key == "curve" else ssim)
    return ssim, mse


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_bench_storage(url: str, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """`open_storage`, plus the symlink-locked journal that only this benchmark opens."""
    grace = 4 * heartbeat if heartbeat else None
    if not url.startswith(SYMLINK_JOURNAL):
        return open_storage(url, heartbeat_interval=heartbeat, grace_period=grace)
    path = url[len(SYMLINK_JOURNAL) :]
    return HeartbeatJournalStorage(
        JournalFileBackend(path, lock_obj=JournalFileSymlinkLock(path)),
        heartbeat_interval=heartbeat,
        grace_period=grace,
        heartbeat_stale_trial_callback=(
            RetryStaleTrial(max_retry=MAX_RETRY) if heartbeat else None
        ),
    )


def worker(
    url: str,
    sampler: str,
    records: bool,
    n_trials: int,
    seed: int,
    heartbeat: int,
    barrier: mp.synchronize.Barrier,
    queue: mp.Queue,
) -> None:
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_bench_storage(url, heartbeat)
    study = optuna.load_study(
        study_name=STUDY, storage=storage, sampler=make_sampler(sampler, seed)
    )
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    error = ""
    try:
        study.optimize(lambda t: objective(t, records), n_trials=n_trials)
    except Exception as err:  # a storage error ends this worker: that is what we count
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
        traceback.print_exc()
    queue.put((start, time.perf_counter(), time.process_time() - cpu_start, error))


def run_once(
    url: str,
    label: str,
    sampler: str,
    records: bool,
    n_workers: int,
    n_trials: int,
    heartbeat: int = 30,
    during: Watch | None = None,
) -> Result:
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(
        study_name=STUDY, storage=open_bench_storage(url), directions=["maximize", "minimize"]
    )
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n_workers)
    queue: mp.Queue = ctx.Queue()
    shares = [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]
    procs = [
        ctx.Process(
            target=worker,
            args=(url, sampler, records, shares[i], 1000 + i, heartbeat, barrier, queue),
        )
        for i in range(n_workers)
    ]
    with during or contextlib.nullcontext():  # from the workers' start to their last report
        for p in procs:
            p.start()
        reports = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    errors = [e for *_, e in reports if e]
    errors += [f"worker exit code {p.exitcode}" for p in procs if p.exitcode]
    seconds = max(r[1] for r in reports) - min(r[0] for r in reports)
    cpu_seconds = sum(r[2] for r in reports)

    study = optuna.load_study(study_name=STUDY, storage=open_bench_storage(url))
    trials = study.get_trials(deepcopy=False)
    numbers = Counter(t.number for t in trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return Result(
        storage=label,
        sampler=sampler,
        records=records,
        workers=n_workers,
        trials=n_trials,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        load=os.getloadavg()[0],
        complete=len(complete),
        duplicates=sum(c - 1 for c in numbers.values()),
        running=sum(t.state == optuna.trial.TrialState.RUNNING for t in trials),
        missing_attrs=sum(any(k not in t.user_attrs for k in USER_ATTRS) for t in complete)
        if records
        else 0,
        failed_alive=sum(
            t.state == optuna.trial.TrialState.FAIL
            and str(t.user_attrs.get("fail_reason", "")).startswith("worker died")
            for t in trials
        ),
        errors=errors,
    )


class Watch:
    """While the workers run: the most connections open to one PostgreSQL database
    (`pg_stat_activity`, sampled every 0.1 s), and the CPU seconds a proxy process used."""

    def __init__(self, count: Callable[[], int], proxy_pid: int | None = None) -> None:
        self.count = count
        self.proxy_pid = proxy_pid
        self.before = 0
        self.peak = 0
        self.proxy_cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Watch:
        self.before = self.peak = self.count()
        self._cpu_start = process_cpu_seconds(self.proxy_pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.proxy_cpu_seconds = process_cpu_seconds(self.proxy_pid) - self._cpu_start

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.count())


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of another process, from /proc (0 without a pid)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ProxyResult(Result):
    connections_before: int = 0
    peak_connections: int = 0
    proxy_cpu_seconds: float = 0.0

    @property
    def proxy_cpu_ms(self) -> float:
        return 1000 * self.proxy_cpu_seconds / max(self.complete, 1)


def start_proxy(database_url: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m search storage-proxy` on a free loopback port, and the URL workers pass."""
    proxy = subprocess.Popen(
        [sys.executable, "-m", "search", "storage-proxy", "--storage", database_url, "--port", "0"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None
    line = proxy.stdout.readline()
    if "--storage grpc://" not in line:
        proxy.kill()
        raise RuntimeError(f"the storage proxy did not start: {line!r}")
    return proxy, line.split("--storage ", 1)[1].split()[0]


def stop_proxy(proxy: subprocess.Popen[str]) -> None:
    proxy.send_signal(signal.SIGTERM)
    try:
        proxy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proxy.kill()
        proxy.wait()


def measure_proxy(server: Any, workers: list[int], n_trials: int) -> list[ProxyResult]:
    """Each worker count, direct to PostgreSQL and through the proxy, interleaved."""
    rows = []
    for n in workers:
        for mode in ("direct", "proxy"):
            name = f"b_proxy_{mode}_{n}"
            database_url = server.create_database(name)
            proxy, url = start_proxy(database_url) if mode == "proxy" else (None, database_url)
            try:
                watch = Watch(
                    lambda name=name: server.connections(name),
                    proxy.pid if proxy else None,
                )
                r = run_once(url, mode, "random", False, n, n_trials, during=watch)
            finally:
                if proxy is not None:
                    stop_proxy(proxy)
            row = ProxyResult(
                **dataclasses.asdict(r),
                connections_before=watch.before,
                peak_connections=watch.peak,
                proxy_cpu_seconds=watch.proxy_cpu_seconds,
            )
            rows.append(row)
            print(
                f"proxy-{mode}-{n}: {row.trials_per_s:.1f} trials/s, {row.overhead_ms:.1f} "
                f"ms/trial, cpu {row.cpu_ms:.1f} ms/trial, proxy cpu {row.proxy_cpu_ms:.1f} "
                f"ms/trial, connections {row.connections_before} -> {row.peak_connections}, "
                f"complete {row.complete}, errors {row.errors}",
                flush=True,
            )
    return rows


def proxy_table(rows: list[ProxyResult]) -> str:
    return markdown_table(
        [
            "connection",
            "workers",
            "trials/s",
            "overhead per trial (ms)",
            "worker CPU per trial (ms)",
            "proxy CPU per trial (ms)",
            "DB connections before",
            "DB connections, most while running",
            "load avg",
            "complete",
            "lost",
            "duplicated",
            "stuck RUNNING",
            "errors",
        ],
        [
            [
                "through the proxy" if r.storage == "proxy" else "direct",
                r.workers,
                f"{r.trials_per_s:.1f}",
                f"{r.overhead_ms:.1f}",
                f"{r.cpu_ms:.1f}",
                f"{r.proxy_cpu_ms:.1f}" if r.storage == "proxy" else "-",
                r.connections_before,
                r.peak_connections,
                f"{r.load:.1f}",
                r.complete,
                r.trials - r.complete,
                r.duplicates,
                r.running,
                "; ".join(sorted(set(r.errors))) or "none",
            ]
            for r in rows
        ],
        ["l"] + ["r"] * 12 + ["l"],
    )


def proxy_findings(rows: list[ProxyResult]) -> list[str]:
    lines = []
    cores = os.cpu_count() or 1
    loads = [r.load for r in rows]
    if loads and max(loads) > cores:
        lines += [
            f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on {cores} CPUs while "
            "these rows ran: wall times (trials/s, overhead per trial) include waiting for a "
            "CPU and are noisy; the CPU columns and the connection counts hardly depend on it.",
            "",
        ]
    for n in dict.fromkeys(r.workers for r in rows):
        pair = {r.storage: r for r in rows if r.workers == n}
        if set(pair) != {"direct", "proxy"}:
            continue
        d, p = pair["direct"], pair["proxy"]
        lines.append(
            f"- {n} {'worker' if n == 1 else 'workers'}: at most {d.peak_connections} database "
            "connections direct, "
            f"{p.peak_connections} through the proxy; overhead per trial {d.overhead_ms:.1f} ms "
            f"direct, {p.overhead_ms:.1f} ms through the proxy (worker CPU {d.cpu_ms:.1f} against "
            f"{p.cpu_ms:.1f} ms, plus {p.proxy_cpu_ms:.1f} ms of the proxy's)."
        )
    problems = sum((r.trials - r.complete) + r.duplicates + r.running + len(r.errors) for r in rows)
    lines.append(
        "- Nothing lost, duplicated or left RUNNING, no worker error, in any row."
        if problems == 0
        else f"- {problems} lost, duplicated or stuck trials and worker errors in all (see the "
        "table)."
    )
    most = max((r.workers for r in rows), default=0)
    pair = {r.storage: r for r in rows if r.workers == most}
    if set(pair) == {"direct", "proxy"}:
        d, p = pair["direct"], pair["proxy"]
        lines += [
            "",
            f"With {most} workers: **{p.peak_connections} database connections through the "
            f"proxy against {d.peak_connections} direct**; CPU per trial {p.cpu_ms:.1f} + "
            f"{p.proxy_cpu_ms:.1f} = {p.cpu_ms + p.proxy_cpu_ms:.1f} ms through the proxy "
            f"(workers + proxy) against {d.cpu_ms:.1f} ms direct (workers; the database "
            "server's CPU is counted in neither).",
        ]
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pg = subprocess.run(
            [str(_pg_bindir() / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except Exception:
        pg = "PostgreSQL (version unknown)"
    import psycopg
    import sqlalchemy

    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (load average "
        f"{load:.1f} at start), {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, Optuna {optuna.__version__}, SQLAlchemy "
        f"{sqlalchemy.__version__}, psycopg {psycopg.__version__}, {pg} "
        "(local, 127.0.0.1 TCP, fsync on); SQLite and journal files on the local disk"
    )


def _pg_bindir() -> Path:
    from tests.pg_server import find_postgres_bindir

    return find_postgres_bindir()


LABELS = {
    "sqlite": "sqlite",
    "journal": "journal (flock)",
    "journal-symlink": "journal, Optuna's symlink lock",
    "postgresql": "postgresql",
}


def efficiency(r: Result, results: list[Result]) -> float:
    """Throughput with N workers / (N x throughput with 1 worker), same storage and variant."""
    base = [
        o.trials_per_s
        for o in results
        if o.workers == 1 and (o.storage, o.sampler, o.records) == (r.storage, r.sampler, r.records)
    ]
    return r.trials_per_s / (r.workers * base[0]) if base else float("nan")


def table(results: list[Result]) -> str:
    rows = [
        [
            LABELS.get(r.storage, r.storage),
            r.sampler,
            "+10 user attrs" if r.records else "bare",
            r.workers,
            f"{r.trials_per_s:.1f}",
            f"{r.overhead_ms:.1f}",
            f"{r.cpu_ms:.1f}",
            f"{efficiency(r, results):.0%}",
            f"{r.load:.1f}",
            r.complete,
            r.trials - r.complete,
            r.duplicates,
            r.running,
            "; ".join(sorted(set(r.errors))) or "none",
        ]
        for r in results
    ]
    return markdown_table(
        [
            "storage",
            "sampler",
            "objective",
            "workers",
            "trials/s",
            "overhead per trial (ms)",
            "worker CPU per trial (ms)",
            "scaling efficiency",
            "load avg",
            "complete",
            "lost",
            "duplicated",
            "stuck RUNNING",
            "errors",
        ],
        rows,
        ["l", "l", "l"] + ["r"] * 10 + ["l"],
    )


def stress_table(results: list[Result]) -> str:
    rows = [
        [
            LABELS.get(r.storage, r.storage),
            r.workers,
            r.trials,
            f"{r.seconds:.1f}",
            r.complete,
            r.trials - r.complete,
            r.duplicates,
            r.running,
            r.missing_attrs,
            r.failed_alive,
            "; ".join(sorted(set(r.errors))) or "none",
        ]
        for r in results
    ]
    return markdown_table(
        [
            "storage",
            "writers",
            "trials",
            "seconds",
            "complete",
            "not run",
            "duplicated",
            "stuck RUNNING",
            "missing user attrs",
            "live trials failed as dead",
            "worker errors",
        ],
        rows,
        ["l"] + ["r"] * 9 + ["l"],
    )


def span(values: list[float], unit: str = " ms", digits: int = 1) -> str:
    """'a-b unit' (or 'a unit' when they agree to the digits shown)."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def findings(results: list[Result], cores: int) -> list[str]:
    """The sentences the tables support, one per storage and one for the target."""
    lines = []
    loads = [r.load for r in results]
    if loads:
        busy = max(loads) > cores
        lines.append(
            f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on {cores} CPUs while the "
            "rows ran"
            + (
                ", above the CPU count (the benchmark's own workers and server count in it, "
                "other jobs too): wall times (trials/s, overhead per trial, scaling efficiency) "
                "include waiting for a CPU and are noisy, efficiencies above 100% being that "
                "noise; the worker CPU column hardly depends on the load."
                if busy
                else "."
            )
        )
        lines.append("")
    for kind in dict.fromkeys(r.storage for r in results):
        rows = [r for r in results if r.storage == kind]
        single = [r for r in rows if r.workers == 1]
        most = max(r.workers for r in rows)
        widest = [r for r in rows if r.workers == most]
        problems = sum(
            (r.trials - r.complete) + r.duplicates + r.running + len(r.errors) for r in rows
        )
        text = f"{LABELS.get(kind, kind)}: worker CPU {span([r.cpu_ms for r in rows])} per trial"
        if single:
            text += f", {span([r.overhead_ms for r in single])} wall with one worker"
        if most > 1 and widest:
            text += (
                f"; {most} workers ran at "
                f"{span([100 * efficiency(r, results) for r in widest], '%', 0)} of {most}x one "
                "worker's throughput"
            )
        text += (
            "; nothing lost, duplicated or left RUNNING, no worker error."
            if problems == 0
            else f"; {problems} lost, duplicated or stuck trials and worker errors in all (see "
            "the table)."
        )
        lines.append("- " + text)
    lines.append("")  # a blank line ends the list
    pg = [r for r in results if r.storage == "postgresql" and r.workers == 1 and not r.records]
    if pg:
        wall = [r.overhead_ms for r in pg]
        met = "met" if max(wall) < TARGET_MS else "not met"
        lines.append(
            f"PostgreSQL overhead per trial with one worker, bare objective: "
            f"{span(wall)} wall, {span([r.cpu_ms for r in pg])} of it worker CPU "
            f"(target < {TARGET_MS:.0f} ms wall: **{met}**)."
        )
    return lines


def stress_findings(stress: list[Result]) -> list[str]:
    lines = []
    for r in stress:
        never = r.duplicates == 0 and r.running == 0 and r.missing_attrs == 0
        text = (
            f"- {LABELS.get(r.storage, r.storage)}: {r.complete}/{r.trials} complete in "
            f"{r.seconds:.0f} s; {r.failed_alive} live trials failed as dead"
        )
        crashed = len(r.errors)
        text += f", {crashed} of {r.workers} workers ended with an error" if crashed else ""
        text += (
            "; nothing duplicated, left RUNNING or missing a user attr."
            if never
            else f"; {r.duplicates} duplicated, {r.running} left RUNNING, {r.missing_attrs} "
            "missing a user attr."
        )
        lines.append(text)
    return lines


def decision(results: list[Result], stress: list[Result]) -> str:
    """What this run says about `--workers N` using the flock journal, for or against."""
    by_kind = {
        kind: [r for r in results + stress if r.storage == kind] for kind in ("journal", "sqlite")
    }
    if not all(by_kind.values()):
        return "(the journal or SQLite was not measured in this run: no comparison)"

    def failures(rows: list[Result]) -> int:
        return sum(
            (r.trials - r.complete) + r.duplicates + r.running + r.failed_alive + len(r.errors)
            for r in rows
        )

    def cpu(rows: list[Result]) -> float:
        return statistics.median(r.cpu_ms for r in rows if r in results)

    journal, sqlite = by_kind["journal"], by_kind["sqlite"]
    supports = failures(journal) == 0 and cpu(journal) <= cpu(sqlite)
    verdict = (
        "This run supports it" if supports else "**This run does not support it; see the tables**"
    )
    return (
        f"{verdict}: the journal with `flock` had {failures(journal)} lost, duplicated, stuck "
        f"or falsely failed trials and worker errors in all its runs (stress included), SQLite "
        f"{failures(sqlite)}; median worker CPU per trial {cpu(journal):.1f} ms against "
        f"{cpu(sqlite):.1f} ms. SQLite stays the one-process default (one file that "
        "`optuna-dashboard` opens directly)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--variants",
        default="tpe:bare,random:bare",
        help="sampler:objective pairs; objective bare or records",
    )
    parser.add_argument("--storages", default="sqlite,journal,postgresql")
    parser.add_argument("--stress-writers", type=int, default=8)
    parser.add_argument(
        "--stress-storages",
        default="sqlite,journal,journal-symlink,postgresql",
        help="storages of the stress run (journal-symlink: Optuna's default lock)",
    )
    parser.add_argument("--stress-trials", type=int, default=400)
    parser.add_argument("--proxy-trials", type=int, default=200)
    parser.add_argument("--proxy-workers", default="1,4,8")
    parser.add_argument(
        "--only",
        choices=["proxy"],
        help="measure only the gRPC proxy section; the others are rewritten from storage.json",
    )
    args = parser.parse_args()
    from tests.pg_server import PostgresServer

    # A killed benchmark still stops its PostgreSQL server and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    described = machine()
    kinds = [] if args.only else args.storages.split(",")
    stress_kinds = args.stress_storages.split(",") if args.stress_writers and not args.only else []
    results: list[Result] = []
    stress: list[Result] = []
    proxy_rows: list[ProxyResult] = []
    server = PostgresServer(durable=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=REPO / "bench") as tmp:

            def url(kind: str, tag: str) -> str:
                if kind == "sqlite":
                    return f"sqlite:///{tmp}/{tag}.db"
                if kind == "journal":
                    return f"journal:///{tmp}/{tag}.log"
                if kind == "journal-symlink":
                    return f"{SYMLINK_JOURNAL}{tmp}/{tag}.log"
                return server.create_database("b_" + tag.replace("-", "_"))

            for kind in kinds:
                for variant in args.variants.split(","):
                    sampler, what = variant.split(":")
                    for n in (int(w) for w in args.workers.split(",")):
                        tag = f"{kind}-{sampler}-{what}-{n}"
                        r = run_once(
                            url(kind, tag), kind, sampler, what == "records", n, args.trials
                        )
                        results.append(r)
                        print(
                            f"{tag}: {r.trials_per_s:.1f} trials/s, "
                            f"{r.overhead_ms:.1f} ms/trial, cpu {r.cpu_ms:.1f} ms/trial, "
                            f"load {r.load:.1f}, complete {r.complete}, errors {r.errors}",
                            flush=True,
                        )
            for kind in stress_kinds:
                tag = f"stress-{kind}"
                r = run_once(
                    url(kind, tag),
                    kind,
                    "random",
                    True,
                    args.stress_writers,
                    args.stress_trials,
                    heartbeat=1,
                )
                stress.append(r)
                print(f"{tag}: complete {r.complete}/{r.trials}, errors {r.errors}", flush=True)
            main_seconds = time.perf_counter() - started
            proxy_workers = [int(w) for w in args.proxy_workers.split(",")]
            proxy_rows = measure_proxy(server, proxy_workers, args.proxy_trials)
    finally:
        server.stop()
    proxy_seconds = time.perf_counter() - started - main_seconds

    header = f"Run {timestamp()} in {main_seconds:.0f} s. Machine: {described}."
    trials, stress_writers = args.trials, args.stress_writers
    if args.only:  # the other sections as the last full run measured them
        kept = json.loads((RESULTS / "storage.json").read_text())
        results = [Result(**row) for row in kept["rows"]]
        stress = [Result(**row) for row in kept["stress"]]
        trials = kept["trials"]
        stress_writers = kept.get("stress_writers") or (stress[0].workers if stress else 0)
        header = kept.get("header") or next(
            line
            for line in (RESULTS / "storage.md").read_text().splitlines()
            if line.startswith("Run ")
        )
    cores = os.cpu_count() or 1
    report = "\n\n".join(
        [
            "# Storage and sampler overhead (bench/bench_storage.py)",
            header,
            *main_sections(results, stress, trials, stress_writers, cores),
            *proxy_sections(proxy_rows, args.proxy_trials, proxy_seconds, described),
        ]
    )
    write_result(
        "storage",
        report,
        {
            "machine": described,
            "header": header,
            "trials": trials,
            "stress_writers": stress_writers,
            "rows": [dataclasses.asdict(r) for r in results],
            "stress": [dataclasses.asdict(r) for r in stress],
            "proxy": {
                "run": f"Run {timestamp()} in {proxy_seconds:.0f} s",
                "trials": args.proxy_trials,
                "rows": [dataclasses.asdict(r) for r in proxy_rows],
            },
        },
    )


def main_sections(
    results: list[Result], stress: list[Result], trials: int, stress_writers: int, cores: int
) -> list[str]:
    return [
        f"{trials} trials per row, shared by the workers. The objective returns at "
        "once after suggesting the six parameters (`bare`), or after also writing the ten "
        "user attrs a trial records (`+10 user attrs`); storages opened by "
        "`search.storage.open_storage` with heartbeats on (30 s). "
        "Overhead per trial = worker-seconds per finished trial; scaling efficiency = "
        "throughput with N workers / (N x throughput with 1 worker). Worker CPU per trial = "
        "CPU time of the worker processes per finished trial (the database server's own CPU "
        "is not included): unlike wall time, it hardly depends on what else the machine "
        f"runs. Load avg = the machine's 1-minute load average when the row finished "
        f"({cores} CPUs).",
        table(results) if results else "(no storage rows in this run)",
        "\n".join(findings(results, cores)).strip(),
        f"## Concurrency stress: {stress_writers} writers, heartbeat every 1 s (grace "
        "4 s), random sampler, ten user attrs per trial",
        "Correctness under far more write pressure than real trials make (each trial ends at "
        'once). "Live trials failed as dead": a heartbeat waited longer than the grace '
        "period for the storage's lock, so another worker failed a trial that was still "
        "running; its worker then fails in `tell` (Optuna refuses to tell a FAIL trial) and "
        'its remaining trials are "not run". The `journal, Optuna\'s symlink lock` row '
        "opens the journal as `open_storage` does but with Optuna's default writer lock "
        "(polling with a back-off of up to 1 s) instead of `flock`.",
        stress_table(stress) if stress else "(skipped)",
        "\n".join(stress_findings(stress)),
        "## Decision: local `--workers N` use the journal file (`journal:///studies/<study>.log`)",
        decision(results, stress),
    ]


def proxy_sections(
    rows: list[ProxyResult], trials: int, seconds: float, described: str
) -> list[str]:
    return [
        "## gRPC storage proxy: database connections and overhead per trial",
        f"Run {timestamp()} in {seconds:.0f} s, same machine. {trials} trials per row, shared "
        "by the workers, random sampler, bare objective, heartbeats on (30 s), one PostgreSQL "
        "database per row. `direct`: every worker opens `postgresql://` itself; `through the "
        "proxy`: one `python -m search storage-proxy --storage postgresql://...` process holds "
        "the connections and the workers pass `--storage grpc://127.0.0.1:P` (loopback). DB "
        "connections = client connections to that database in `pg_stat_activity`, before the "
        "workers start (those of the benchmark's own process that created the study, in a "
        "direct row; the proxy's, in a proxied one) and the most seen while they run (sampled "
        "every 0.1 s), so the workers' own are the difference in a direct row. Proxy CPU per "
        "trial = the proxy process's CPU time per finished trial, on top of the workers'.",
        proxy_table(rows) if rows else "(skipped)",
        "\n".join(proxy_findings(rows)),
    ]


if __name__ == "__main__":
    main()
