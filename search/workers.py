"""Several `python -m search run` worker processes on one machine, sharing one study.

`run --workers N` calls `run_workers`, which starts N copies of the same worker command. The
workers share nothing but the storage: Optuna hands each its own trials, the study's total
trial budget is counted in storage, heartbeats let a surviving worker fail and retry the trial
of one that died, and the pruner reads intermediate results from storage. Running the same
command by hand on several machines against one PostgreSQL storage is the same thing without
this parent.

What the parent adds:

- GPUs: with GPUs present, worker i sees only `gpus[i % len(gpus)]` (`CUDA_VISIBLE_DEVICES`,
  numbered as `nvidia-smi` numbers them); the default is one worker per GPU. Without GPUs,
  the CPU cores are split evenly (`TF_NUM_INTRAOP_THREADS`, `TF_NUM_INTEROP_THREADS`,
  `OMP_NUM_THREADS`).
- `--worker-index i` on worker i's command line (and `VAE_SEARCH_WORKER_INDEX`,
  `VAE_SEARCH_WORKERS` in its environment): it marks the process as a worker, not a parent
  that would start workers of its own, and lets it offset its sampler seed (N workers with one
  seed would otherwise suggest the same configurations).
- Each output line of worker i is prefixed with `[wi] ` (stdout to stdout, stderr to stderr).
- SIGINT/SIGTERM are forwarded to every worker, which stops cleanly (its running trial ends
  with a reason); the parent waits for them. A third signal, or `STOP_TIMEOUT_S` without a
  clean stop, kills them; heartbeats then fail their trials at the next start.
- The exit code is 0 only if every worker exited 0.

`detect_gpus` never imports TensorFlow in the parent (that would take memory on every GPU).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import IO

from search.errors import UsageError

STOP_TIMEOUT_S = 120.0
WORKER_INDEX_ENV = "VAE_SEARCH_WORKER_INDEX"
WORKERS_ENV = "VAE_SEARCH_WORKERS"

_GPU_LINE = re.compile(r"^GPU (\d+):.*?(?:\(UUID: (\S+)\))?\s*$")


def detect_gpus() -> list[int]:
    """Indices (as `nvidia-smi -L` numbers them) of the GPUs this process may use.

    No `nvidia-smi`, or it fails: no GPUs. `CUDA_VISIBLE_DEVICES`, when set, narrows the list
    (indices or `GPU-...` UUIDs; empty or `-1` means none).
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run(
            [smi, "-L"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if listing.returncode != 0:
        return []
    gpus: dict[int, str] = {}
    for line in listing.stdout.splitlines():
        match = _GPU_LINE.match(line.strip())
        if match:
            gpus[int(match.group(1))] = match.group(2) or ""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return sorted(gpus)
    chosen: list[int] = []
    for item in (v.strip() for v in visible.split(",")):
        if not item or item == "-1":
            break  # CUDA stops at the first invalid entry
        if item.isdigit() and int(item) in gpus:
            chosen.append(int(item))
        else:
            by_uuid = [i for i, uuid in gpus.items() if uuid and uuid.startswith(item)]
            if not by_uuid:
                break
            chosen.append(by_uuid[0])
    return chosen


def plan_workers(n_workers: int | None, gpus: list[int] | None = None) -> tuple[int, list[int]]:
    """Check `--workers`/`--gpus` against this machine: (worker count, GPUs to use).

    `n_workers=None` means one worker per GPU (one worker without GPUs). A GPU that is not
    present, or `--workers` below 1, is a UsageError.
    """
    present = detect_gpus()
    if gpus is not None:
        if not gpus:
            raise UsageError("--gpus names no GPU")
        if len(set(gpus)) != len(gpus):
            raise UsageError(f"--gpus names a GPU twice: {','.join(map(str, gpus))}")
        missing = [g for g in gpus if g not in present]
        if missing:
            have = ", ".join(map(str, present)) if present else "none"
            raise UsageError(f"GPU {', '.join(map(str, missing))} not found (GPUs present: {have})")
    chosen = gpus if gpus is not None else present
    if n_workers is None:
        n_workers = max(1, len(chosen))
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {n_workers!r}")
    return n_workers, chosen


def worker_environments(n_workers: int, gpus: Sequence[int]) -> list[dict[str, str]]:
    """The environment of each worker: its GPU, or its share of the CPU cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    threads = max(1, cores // n_workers)
    envs = []
    for index in range(n_workers):
        env = dict(os.environ)
        env.update(
            {
                WORKER_INDEX_ENV: str(index),
                WORKERS_ENV: str(n_workers),
                "PYTHONUNBUFFERED": "1",
                "TF_NUM_INTRAOP_THREADS": str(threads),
                "TF_NUM_INTEROP_THREADS": str(min(2, threads)),
                "OMP_NUM_THREADS": str(threads),
            }
        )
        if gpus:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # number GPUs as nvidia-smi does
            env["CUDA_VISIBLE_DEVICES"] = str(gpus[index % len(gpus)])
        envs.append(env)
    return envs


def run_workers(
    n_workers: int,
    worker_argv: list[str],
    gpus: list[int] | None = None,
    extra_env: dict[str, str] | None = None,
) -> int:
    """Run `python -m search run <worker_argv> --worker-index i` for i < `n_workers`.

    `gpus`: the GPUs to use (validated against those present); None = all present.
    `extra_env`: added to every worker's environment (secrets that must not show in `ps`).
    Blocks until every worker has exited; 0 only if all exited 0.
    """
    n_workers, chosen = plan_workers(n_workers, gpus)
    envs = [{**env, **(extra_env or {})} for env in worker_environments(n_workers, chosen)]
    where = (
        "GPU " + ", ".join(env["CUDA_VISIBLE_DEVICES"] for env in envs)
        if chosen
        else f"CPU, {envs[0]['TF_NUM_INTRAOP_THREADS']} threads each"
    )
    print(f"starting {n_workers} workers ({where})", flush=True)

    if worker_argv[:1] == ["run"]:  # the caller's own argv after `python -m search`
        worker_argv = worker_argv[1:]
    procs: list[subprocess.Popen[bytes]] = []
    pumps: list[threading.Thread] = []
    lock = threading.Lock()
    signals_seen: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        signals_seen.append(signum)
        hard = len(signals_seen) >= 3
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL if hard else signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index, env in enumerate(envs):
            # Own process group: a Ctrl-C in the terminal reaches the workers once, from us.
            command = [
                sys.executable,
                "-m",
                "search",
                "run",
                *worker_argv,
                "--worker-index",
                str(index),
            ]
            p = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            procs.append(p)
            for source, sink in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                pump = threading.Thread(
                    target=_pump, args=(source, sink, f"[w{index}] ", lock), daemon=True
                )
                pump.start()
                pumps.append(pump)
        _wait(procs, signals_seen)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for p in procs:  # only if starting a later worker failed
            if p.poll() is None:
                p.kill()
                p.wait()
        for pump in pumps:
            pump.join(timeout=5)

    codes = [_exit_code(p.returncode) for p in procs]
    for index, code in enumerate(codes):
        if code:
            print(f"worker {index} exited with code {code}", file=sys.stderr, flush=True)
    failed = [c for c in codes if c]
    if failed:
        return 2 if all(c == 2 for c in failed) else failed[0]
    return 128 + signals_seen[0] if signals_seen else 0


def _wait(procs: list[subprocess.Popen[bytes]], signals_seen: list[int]) -> None:
    stop_deadline: float | None = None
    while any(p.poll() is None for p in procs):
        if signals_seen and stop_deadline is None:
            stop_deadline = time.monotonic() + STOP_TIMEOUT_S
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            print(
                f"workers did not stop within {STOP_TIMEOUT_S:.0f} s: killing them",
                file=sys.stderr,
                flush=True,
            )
            for p in procs:
                if p.poll() is None:
                    p.kill()
            stop_deadline = float("inf")
        time.sleep(0.1)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _pump(source: IO[bytes] | None, sink: IO[str], prefix: str, lock: threading.Lock) -> None:
    """Copy a worker's output to ours, each line (or carriage-return update) prefixed."""
    if source is None:
        return
    pending = b""
    while True:
        chunk = os.read(source.fileno(), 65536)
        if not chunk:
            break
        pending += chunk
        pieces = re.split(rb"(?<=[\n\r])", pending)
        pending = pieces.pop()  # the unfinished tail (b"" when the chunk ended a line)
        if pieces:
            _write(sink, lock, "".join(prefix + p.decode(errors="replace") for p in pieces))
    if pending:
        _write(sink, lock, prefix + pending.decode(errors="replace") + "\n")
    source.close()


def _write(sink: IO[str], lock: threading.Lock, text: str) -> None:
    with lock:
        try:
            sink.write(text)
            sink.flush()
        except (OSError, ValueError):
            pass  # our own output is gone (closed pipe): the workers keep going regardless
