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
writers per storage does the same with a heartbeat every second.

Usage: python bench/bench_storage.py [--trials 200] [--workers 1,2,4]
       [--out bench/results/storage.md]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402

from search.storage import open_storage  # noqa: E402

STUDY = "bench"
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
    storage = open_storage(url, heartbeat_interval=heartbeat, grace_period=4 * heartbeat)
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
) -> Result:
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(
        study_name=STUDY, storage=open_storage(url), directions=["maximize", "minimize"]
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
    for p in procs:
        p.start()
    reports = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    errors = [e for *_, e in reports if e]
    errors += [f"worker exit code {p.exitcode}" for p in procs if p.exitcode]
    seconds = max(r[1] for r in reports) - min(r[0] for r in reports)
    cpu_seconds = sum(r[2] for r in reports)

    study = optuna.load_study(study_name=STUDY, storage=open_storage(url))
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
    import psycopg2
    import sqlalchemy

    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (shared with other jobs; load average "
        f"{load:.1f} at start), {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, Optuna {optuna.__version__}, SQLAlchemy "
        f"{sqlalchemy.__version__}, psycopg2 {psycopg2.__version__.split()[0]}, {pg} "
        "(local, 127.0.0.1 TCP, fsync on); SQLite and journal files on the local disk"
    )


def _pg_bindir() -> Path:
    from tests.pg_server import find_postgres_bindir

    return find_postgres_bindir()


def table(results: list[Result]) -> str:
    base = {(r.storage, r.sampler, r.records): r.trials_per_s for r in results if r.workers == 1}
    lines = [
        "| storage | sampler | objective | workers | trials/s | overhead per trial (ms) "
        "| worker CPU per trial (ms) | scaling efficiency | load avg | complete | lost "
        "| duplicated | stuck RUNNING | errors |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- |",
    ]
    for r in results:
        key = (r.storage, r.sampler, r.records)
        eff = r.trials_per_s / (r.workers * base[key]) if key in base else float("nan")
        errs = "; ".join(sorted(set(r.errors))) or "none"
        what = "+10 user attrs" if r.records else "bare"
        lines.append(
            f"| {r.storage} | {r.sampler} | {what} | {r.workers} | {r.trials_per_s:.1f} | "
            f"{r.overhead_ms:.1f} | {r.cpu_ms:.1f} | {eff:.0%} | {r.load:.1f} | {r.complete} | "
            f"{r.trials - r.complete} | "
            f"{r.duplicates} | {r.running} | {errs} |"
        )
    return "\n".join(lines)


def stress_table(results: list[Result]) -> str:
    lines = [
        "| storage | writers | trials | seconds | complete | not run | duplicated | stuck RUNNING "
        "| missing user attrs | live trials failed as dead | worker errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        errs = "; ".join(sorted(set(r.errors))) or "none"
        lines.append(
            f"| {r.storage} | {r.workers} | {r.trials} | {r.seconds:.1f} | {r.complete} | "
            f"{r.trials - r.complete} | {r.duplicates} | {r.running} | {r.missing_attrs} | "
            f"{r.failed_alive} | {errs} |"
        )
    return "\n".join(lines)


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
    parser.add_argument("--stress-only", action="store_true")
    parser.add_argument("--stress-trials", type=int, default=400)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "storage.md"))
    args = parser.parse_args()
    from tests.pg_server import PostgresServer

    # A killed benchmark still stops its PostgreSQL server and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    described = machine()
    kinds = args.storages.split(",")
    results: list[Result] = []
    stress: list[Result] = []
    server = PostgresServer(durable=True).start() if "postgresql" in kinds else None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=REPO / "bench") as tmp:

            def url(kind: str, tag: str) -> str:
                if kind == "sqlite":
                    return f"sqlite:///{tmp}/{tag}.db"
                if kind == "journal":
                    return f"journal:///{tmp}/{tag}.log"
                assert server is not None
                return server.create_database("b_" + tag.replace("-", "_"))

            for kind in kinds if not args.stress_only else ():
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
            if args.stress_writers:
                for kind in kinds:
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
    finally:
        if server is not None:
            server.stop()

    pg = [r.overhead_ms for r in results if r.storage == "postgresql" and not r.records]
    report = "\n\n".join(
        [
            "# Storage and sampler overhead (bench/bench_storage.py)",
            f"Machine: {described}.",
            f"{args.trials} trials per row, shared by the workers. The objective returns at "
            "once after suggesting the six parameters (`bare`), or after also writing the ten "
            "user attrs a trial records (`+10 user attrs`); storages opened by "
            "`search.storage.open_storage` with heartbeats on (30 s). "
            "Overhead per trial = worker-seconds per finished trial; scaling efficiency = "
            "throughput with N workers / (N x throughput with 1 worker). Worker CPU per trial = "
            "CPU time of the worker processes per finished trial (the database server's own CPU "
            "is not included): unlike wall time, it hardly depends on what else the machine runs. "
            "Load avg = the machine's 1-minute load average when the row finished (2 CPUs; other "
            "jobs were running, so wall times are inflated where it exceeds 2).",
            table(results),
            (
                f"PostgreSQL overhead per trial, bare objective: {min(pg):.1f}-{max(pg):.1f} ms "
                f"(median {statistics.median(pg):.1f} ms; target < 50 ms)."
                if pg
                else ""
            ),
            f"## Concurrency stress: {args.stress_writers} writers, heartbeat every 1 s, random "
            "sampler, ten user attrs per trial",
            stress_table(stress) if stress else "(skipped)",
        ]
    )
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
