"""Several `python -m search run` worker processes on one machine, sharing one study.

`run --workers N` calls `run_workers`, which starts N copies of the same worker command. The
workers share nothing but the storage: Optuna hands each its own trials, the study's total
trial budget is counted in storage, heartbeats let a surviving worker fail and retry the trial
of one that died, and the pruner reads intermediate results from storage. Running the same
command by hand on several machines against one PostgreSQL storage is the same thing without
this parent.

What the parent adds:

- GPUs: the devices are what `nvidia-smi -L` lists, narrowed by an existing
  `CUDA_VISIBLE_DEVICES` (indices, `GPU-`/`MIG-` UUIDs: Slurm and Kubernetes set it); a GPU
  in MIG mode offers its slices instead of itself. Worker i sees only device
  `i % len(devices)` (`CUDA_VISIBLE_DEVICES`: the index for a whole GPU, the UUID for a MIG
  slice) and is told in `VAE_SEARCH_DEVICE` what it was given, which it logs. The default is
  `--workers-per-gpu` workers (1) per device. Without GPUs, the CPU cores are split evenly
  (`TF_NUM_INTRAOP_THREADS`, `TF_NUM_INTEROP_THREADS`, `OMP_NUM_THREADS`); without GPUs `run`
  stays one process unless given a count, or `--workers auto` (`study.choose_cpu_workers`).
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
from dataclasses import dataclass
from types import FrameType
from typing import IO

from search.defaults import ASSIGNED_DEVICE_ENV
from search.errors import UsageError
from search.faults import EXIT_FAULT

STOP_TIMEOUT_S = 120.0
WORKER_INDEX_ENV = "VAE_SEARCH_WORKER_INDEX"
WORKERS_ENV = "VAE_SEARCH_WORKERS"

# `nvidia-smi -L`: one line per GPU, and under a GPU in MIG mode one indented line per slice:
#   GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-...)
#     MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-...)
_GPU_LINE = re.compile(r"^GPU (\d+): (.*?)\s*(?:\(UUID: (\S+)\))?$")
_MIG_LINE = re.compile(r"^MIG (\S+)\s+Device\s+(\d+): \(UUID: (\S+)\)$")


@dataclass(frozen=True)
class GpuDevice:
    """One device a worker can be given: a whole GPU, or one MIG slice of a GPU."""

    index: int  # the GPU's index as `nvidia-smi` numbers it (the parent GPU for a MIG slice)
    name: str  # the model, e.g. "NVIDIA H100 80GB HBM3"
    uuid: str = ""  # "GPU-..." or "MIG-..." ("" when nvidia-smi printed none)
    mig_profile: str | None = None  # e.g. "1g.5gb" for a MIG slice
    mig_device: int | None = None  # the slice's number within its GPU
    gpu_uuid: str = ""  # the whole GPU's UUID (the same as `uuid` for a whole GPU)

    @property
    def cuda_id(self) -> str:
        """What `CUDA_VISIBLE_DEVICES` must say to show a process this device alone.

        A MIG slice can only be named by its UUID; a whole GPU by its index, which
        `CUDA_DEVICE_ORDER=PCI_BUS_ID` makes the same number nvidia-smi prints.
        """
        return self.uuid if self.mig_profile is not None else str(self.index)

    def describe(self) -> str:
        """E.g. `GPU 2 (NVIDIA H100 80GB HBM3, GPU-8c1f...)`, `GPU 0 MIG 1g.5gb #1 (...)`."""
        where = f"GPU {self.index}"
        if self.mig_profile is not None:
            where += f" MIG {self.mig_profile} #{self.mig_device}"
        return f"{where} ({', '.join(p for p in (self.name, self.uuid) if p)})"


def _parse_listing(listing: str) -> list[GpuDevice]:
    """The devices of an `nvidia-smi -L` listing: whole GPUs, or the slices of MIG GPUs.

    A GPU in MIG mode cannot run CUDA work as a whole; only its slices can, so it
    contributes its slices and not itself.
    """
    gpus: list[GpuDevice] = []
    slices: dict[int, list[GpuDevice]] = {}
    for line in listing.splitlines():
        text = line.strip()
        gpu = _GPU_LINE.match(text)
        if gpu:
            uuid = gpu.group(3) or ""
            gpus.append(GpuDevice(int(gpu.group(1)), gpu.group(2), uuid, gpu_uuid=uuid))
            continue
        mig = _MIG_LINE.match(text)
        if mig and gpus:
            parent = gpus[-1]
            slices.setdefault(parent.index, []).append(
                GpuDevice(
                    parent.index,
                    parent.name,
                    mig.group(3),
                    mig.group(1),
                    int(mig.group(2)),
                    parent.gpu_uuid,
                )
            )
    return [device for gpu in gpus for device in slices.get(gpu.index, [gpu])]


def _narrow_to_visible(devices: list[GpuDevice], visible: str) -> list[GpuDevice]:
    """The devices `CUDA_VISIBLE_DEVICES=visible` leaves, in its order.

    Entries are GPU indices, `GPU-...` UUIDs (or unique prefixes) or `MIG-...` UUIDs, as
    Slurm, Kubernetes' device plugin or a user set them. Like CUDA, stop at the first entry
    that names nothing (so empty, `-1` or `NoDevFiles` mean no GPU).
    """
    chosen: list[GpuDevice] = []
    for item in (v.strip() for v in visible.split(",")):
        if item.isdigit():
            found = [d for d in devices if d.index == int(item)]
        elif item.startswith("MIG-"):
            found = [d for d in devices if d.mig_profile is not None and d.uuid.startswith(item)]
        elif item.startswith("GPU-"):  # a whole GPU; for a GPU in MIG mode, its slices
            found = [d for d in devices if d.gpu_uuid.startswith(item)]
        else:
            found = []
        if not found:
            break
        chosen.extend(d for d in found if d not in chosen)
    return chosen


def detect_gpus() -> list[GpuDevice]:
    """The GPUs (or MIG slices) this process may use, as `nvidia-smi -L` lists them.

    No `nvidia-smi`, or it fails: no GPUs. `CUDA_VISIBLE_DEVICES`, when set, narrows the list.
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
    devices = _parse_listing(listing.stdout)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return devices if visible is None else _narrow_to_visible(devices, visible)


def plan_workers(
    n_workers: int | None, gpus: list[int] | None = None, workers_per_gpu: int = 1
) -> tuple[int, list[GpuDevice]]:
    """Check `--workers`/`--gpus`/`--workers-per-gpu` against this machine.

    Returns (worker count, devices to hand out in turn). `gpus` are nvidia-smi GPU indices;
    a GPU in MIG mode stands for all its visible slices. `n_workers=None` means
    `workers_per_gpu` workers per device (one worker without GPUs). A GPU that is not
    present, or a count below 1, is a UsageError. Only the launching parent calls this: a
    worker sees a narrowed `CUDA_VISIBLE_DEVICES` and must not judge the parent's `--gpus`.
    """
    if workers_per_gpu < 1:
        raise UsageError(f"--workers-per-gpu must be 1 or more, not {workers_per_gpu!r}")
    present = detect_gpus()
    chosen = present
    if gpus is not None:
        if not gpus:
            raise UsageError("--gpus names no GPU")
        if len(set(gpus)) != len(gpus):
            raise UsageError(f"--gpus names a GPU twice: {','.join(map(str, gpus))}")
        missing = [g for g in gpus if not any(d.index == g for d in present)]
        if missing:
            have = ", ".join(sorted({str(d.index) for d in present}, key=int)) or "none"
            raise UsageError(f"GPU {', '.join(map(str, missing))} not found (GPUs present: {have})")
        chosen = [d for g in gpus for d in present if d.index == g]
    if n_workers is None:
        n_workers = max(1, len(chosen) * workers_per_gpu)
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {n_workers!r}")
    return n_workers, chosen


def describe_placement(n_workers: int, devices: Sequence[GpuDevice]) -> str:
    """One line: which worker gets which device (or the CPU split)."""
    if not devices:
        return f"{n_workers} workers on the CPU"
    given = [devices[i % len(devices)] for i in range(n_workers)]
    line = ", ".join(f"w{i}: {d.describe()}" for i, d in enumerate(given))
    idle = [d for d in devices if d not in given]
    if idle:
        line += "; idle: " + ", ".join(d.describe() for d in idle)
    return line


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_environments(n_workers: int, devices: Sequence[GpuDevice]) -> list[dict[str, str]]:
    """The environment of each worker: its device (round robin), or its share of the cores."""
    threads = max(1, cpu_cores() // n_workers)
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
        env.pop(ASSIGNED_DEVICE_ENV, None)
        if devices:
            device = devices[index % len(devices)]
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # number GPUs as nvidia-smi does
            env["CUDA_VISIBLE_DEVICES"] = device.cuda_id
            env[ASSIGNED_DEVICE_ENV] = device.describe()  # the worker names it in its log
        envs.append(env)
    return envs


def run_workers(
    n_workers: int | None,
    worker_argv: list[str],
    gpus: list[int] | None = None,
    workers_per_gpu: int = 1,
    extra_env: dict[str, str] | None = None,
) -> int:
    """Run `python -m search run <worker_argv> --worker-index i` for i < `n_workers`.

    `gpus`: the GPUs to use (validated against those present); None = all present.
    `extra_env`: added to every worker's environment (secrets that must not show in `ps`).
    Blocks until every worker has exited; 0 only if all exited 0. Never imports TensorFlow: a
    CUDA context in this parent would take memory on every GPU and sit idle.
    """
    n_workers, chosen = plan_workers(n_workers, gpus, workers_per_gpu)
    envs = [{**env, **(extra_env or {})} for env in worker_environments(n_workers, chosen)]
    where = (
        describe_placement(n_workers, chosen)
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

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
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
        if code and code != EXIT_FAULT:  # a fault: the worker said so in its error line
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
