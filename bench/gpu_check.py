"""The GPU check: one command, each step bounded in time, under 8 minutes on one GPU.

    python bench/gpu_check.py [--backend jax] [--out DIR]

Steps, each in its own process with a time limit (a step past it is reported, not waited
for): the devices the backend sees; training throughput (images/s) of the baseline model and
the search space's largest at batch 64, 128 and 256, float32 and mixed precision, with and
without steps_per_execution, for a fixed number of steps after a warm-up epoch; SSIM on the
device against the skimage reference (maximum difference); `run --preset quick --trials 6
--data bundled` with `--workers-per-gpu 1` and `2` (trials per hour, and whether each worker
logged the device it was given). Writes bench/results/gpu.md and gpu.json (one section per
backend; a later run of another backend adds its own).

Without a GPU the same steps run at tiny sizes on the CPU (well under a minute) and say that
no GPU was found; nothing is written unless `--out DIR` is given (the test suite does so).
`--cpu-real-sizes` runs the real sizes on the CPU at batch 64 and 128, float32 (the CPU
numbers of each backend), written to bench/results/backends_cpu.md and .json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, RESULTS, machine, markdown_table, timestamp

BACKENDS = ("tensorflow", "jax", "torch")
TINY_MODEL = {"latent_dim": 2, "n_layers": 1, "filters": 4, "dense_units": 8, "loss": "bce"}
LARGEST_MODEL = {"latent_dim": 32, "n_layers": 4, "filters": 64, "dense_units": 256}


def plan(gpu: bool, real_sizes: bool) -> dict[str, Any]:
    """What each step does and how long it may take (seconds), by mode."""
    if gpu:
        return {
            "models": {"baseline": {}, "largest": LARGEST_MODEL},
            "batches": [64, 128, 256],
            "precisions": ["float32", "mixed_float16"],
            "steps_per_execution": [1, 16],
            "steps": 100,
            "ssim_images": 2000,
            "study": ["--preset", "quick", "--trials", "6"],
            "workers": [1, 2],
            "limits": {"devices": 60, "throughput": 210, "ssim": 45, "study": 75},
        }
    if real_sizes:
        return {
            "models": {"baseline": {}, "largest": LARGEST_MODEL},
            "batches": [64, 128],
            "precisions": ["float32"],
            "steps_per_execution": [1, 16],
            "steps": 40,
            "ssim_images": 500,
            # what this mode is for is images/s; one small study shows the run works
            "study": ["--preset", "smoke", "--subset", "256", "--epochs", "1", "--trials", "{n}"],
            "workers": [1],
            "limits": {"devices": 60, "throughput": 600, "ssim": 60, "study": 240},
        }
    return {
        "models": {"tiny": TINY_MODEL},
        "batches": [16, 32],
        "precisions": ["float32", "mixed_float16"],
        "steps_per_execution": [1, 4],
        "steps": 2,
        "ssim_images": 40,
        # one trial per worker: what is checked is that each worker trains and logs its device
        "study": ["--preset", "smoke", "--subset", "64", "--epochs", "1", "--trials", "{n}"],
        "workers": [1, 2],
        "limits": {"devices": 60, "throughput": 120, "ssim": 60, "study": 150},
    }


# -- the steps, each run in a child process (`--step NAME`) -----------------------------------


def step_devices(settings: dict[str, Any]) -> dict[str, Any]:
    import keras

    from search import backend

    gpus, threads = backend.list_gpus()
    name = backend.current()
    if name == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_physical_devices()]
        version = tf.__version__
    elif name == "jax":
        import jax

        devices = [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]
        version = jax.__version__
    else:
        import torch

        devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        version = torch.__version__
    return {
        "backend": name,
        "backend_version": version,
        "keras": keras.__version__,
        "devices": devices,
        "gpus": [{"name": n, "compute_capability": c} for n, c in gpus],
        "cpu_threads": threads,
        "described": backend.configure_device(),
    }


def _training_images(n: int) -> Any:
    import numpy as np

    from search.data import load_mnist

    images = load_mnist("bundled", seed=0).train.images
    reps = -(-n // len(images))
    return np.concatenate([images] * reps)[:n]


def step_throughput(settings: dict[str, Any]) -> dict[str, Any]:
    import keras
    import numpy as np

    from search import backend, defaults
    from search.model import build_vae, count_params

    backend.configure_device()
    deadline = time.monotonic() + settings["budget_s"]
    largest_batch = max(settings["batches"])
    images = _training_images(settings["steps"] * largest_batch)
    rows = []
    for model_name, overrides in settings["models"].items():
        params = {**defaults.MODEL, **overrides}
        for precision in settings["precisions"]:
            for batch in settings["batches"]:
                for spe in settings["steps_per_execution"]:
                    row = {"model": model_name, "precision": precision, "batch": batch}
                    row["steps_per_execution"] = spe
                    if time.monotonic() > deadline:
                        rows.append({**row, "skipped": "out of time"})
                        continue
                    keras.backend.clear_session()
                    keras.mixed_precision.set_global_policy(precision)
                    try:
                        vae = build_vae(params, seed=0)
                        vae.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=spe)
                        x = images[: settings["steps"] * batch]
                        y = np.zeros(len(x), np.int32)  # labels: only a predictor reads them
                        times: list[float] = []
                        timer = _EpochTimer(times)
                        vae.fit(x, y, batch_size=batch, epochs=2, verbose=0, callbacks=[timer])
                        row["n_params"] = count_params(vae)
                        row["first_epoch_s"] = round(times[0], 3)
                        row["images_per_s"] = round(len(x) / times[1], 1)
                    except Exception as exc:  # a config that cannot run is reported, not fatal
                        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    finally:
                        keras.mixed_precision.set_global_policy("float32")
                    rows.append(row)
                    print("  " + _throughput_line(row), flush=True)
                    print("ROW " + json.dumps(row), flush=True)
    return {"rows": rows}


class _EpochTimer:
    """A Keras callback without subclassing at import time (keras loads in the child only)."""

    def __new__(cls, times: list[float]) -> Any:
        import keras

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.started)

        return Timer()


def step_ssim(settings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from skimage.metrics import structural_similarity

    from search import backend
    from search.metrics import ssim_per_image

    backend.configure_device()
    a = _training_images(settings["ssim_images"]).astype(np.float64)[..., 0]
    rng = np.random.default_rng(0)
    b = np.clip(a + rng.normal(0.0, 0.1, a.shape), 0.0, 1.0)
    reference = np.array(
        [
            structural_similarity(
                x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for x, y in zip(a, b, strict=True)
        ]
    )
    result: dict[str, Any] = {"images": len(a)}
    for dtype in ("float64", "float32"):
        ssim_per_image(a[:8], b[:8], dtype=dtype)  # set-up outside the clock
        started = time.perf_counter()
        values = ssim_per_image(a, b, dtype=dtype)
        result[f"{dtype}_seconds"] = round(time.perf_counter() - started, 4)
        result[f"{dtype}_max_difference"] = float(np.abs(values - reference).max())
    return result


STEPS = {"devices": step_devices, "throughput": step_throughput, "ssim": step_ssim}


def run_child(step: str, backend_name: str, settings: dict[str, Any], limit: float) -> Any:
    """One step in its own process under `backend_name`, stopped at `limit` seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": backend_name}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend_name == "jax":
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    command = [sys.executable, __file__, "--step", step, "--settings", json.dumps(settings)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=limit, cwd=REPO
        )
    except subprocess.TimeoutExpired as exc:
        shown = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        print("".join(f"{x}\n" for x in shown.splitlines() if not x.startswith("ROW ")), end="")
        # what finished before the limit is kept: the rows the child printed as it went
        rows = [json.loads(x[len("ROW ") :]) for x in shown.splitlines() if x.startswith("ROW ")]
        stopped = {"error": f"stopped after its {limit:.0f} s limit"}
        return {**stopped, "rows": rows} if rows else stopped
    for line in done.stdout.splitlines():
        if line.startswith("ROW "):
            continue
        if not line.startswith("RESULT "):
            print(line)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not results:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"error": f"exit {done.returncode}: {tail}"}
    found = json.loads(results[-1][len("RESULT ") :])
    found["step_seconds"] = round(time.monotonic() - started, 1)
    return found


def run_study(
    backend_name: str, gpu: bool, study_args: list[str], workers: int, limit: float
) -> dict[str, Any]:
    """`run` with `workers` workers (per GPU, or CPU processes); trials/hour, device lines."""
    import optuna

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    storage = f"sqlite:///{folder}/check.db"
    placement = ["--workers-per-gpu", str(workers)] if gpu else ["--workers", str(workers)]
    command = [
        sys.executable, "-m", "search", "run", "--backend", backend_name, "--data", "bundled",
        *[a.replace("{n}", str(workers)) for a in study_args], *placement, "--no-report",
        "--keep-models", "none", "--confirm", "0", "--study", "check",
        "--storage", storage,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=limit, cwd=folder
        )
    except subprocess.TimeoutExpired:
        return {"workers": workers, "error": f"stopped after its {limit:.0f} s limit"}
    wall = time.monotonic() - started
    output = (done.stdout + "\n" + done.stderr).splitlines()
    if done.returncode != 0:
        return {"workers": workers, "error": f"exit {done.returncode}: {output[-1][:300]}"}
    study = optuna.load_study(study_name="check", storage=storage)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = len(study.get_trials(deepcopy=False, states=states))
    device_lines = [line for line in output if "device: " in line]
    # the launcher prefixes each worker's lines with `[wi] `; one process has no prefix
    started_workers = sorted({m.group(1) for x in output if (m := re.match(r"\[(w\d+)\]", x))})
    logged = {w: [x for x in device_lines if x.startswith(f"[{w}] ")] for w in started_workers}
    if not started_workers:
        logged = {"w0": device_lines}
    return {
        "workers": workers,
        "trials": finished,
        "wall_s": round(wall, 1),
        "trials_per_hour": round(finished / wall * 3600, 1),
        "worker_devices": {
            w: (lines[0].split("device: ", 1)[1] if lines else None) for w, lines in logged.items()
        },
        "every_worker_logged_its_device": bool(logged) and all(logged.values()),
    }


# -- the report -------------------------------------------------------------------------------


def _throughput_line(row: dict[str, Any]) -> str:
    what = (
        f"{row['model']:8} {row['precision']:13} batch {row['batch']:3} "
        f"steps/execution {row['steps_per_execution']:2}"
    )
    if "images_per_s" in row:
        return f"{what}: {row['images_per_s']:8.0f} images/s (first epoch {row['first_epoch_s']} s)"
    return f"{what}: {row.get('skipped') or row.get('error')}"


def throughput_table(backends: dict[str, Any]) -> str:
    """Images/s of every backend's throughput rows, one table (first epoch: with compiling)."""
    table = [
        [
            name,
            r["model"],
            r.get("n_params", "-"),
            r["precision"],
            r["batch"],
            r["steps_per_execution"],
            f"{r['images_per_s']:.0f}" if "images_per_s" in r else r.get("skipped", "failed"),
            r.get("first_epoch_s", "-"),
        ]
        for name, found in backends.items()
        for r in found.get("throughput", {}).get("rows", [])
    ]
    header = ["backend", "model", "parameters", "precision", "batch", "steps/execution"]
    return markdown_table([*header, "images/s", "first epoch s"], table, list("llrlrrrr"))


def backend_section(name: str, found: dict[str, Any]) -> str:
    devices = found.get("devices", {})
    lines = [f"## {name}", ""]
    if "error" in devices:
        return "\n".join([*lines, f"Device listing failed: {devices['error']}", ""])
    lines += [
        f"Measured from {found.get('when')}; {found.get('machine')}.",
        "",
        f"{name} {devices.get('backend_version')}, Keras {devices.get('keras')}; devices: "
        + ", ".join(devices.get("devices", [])),
        f"Trains on: {devices.get('described')}.",
        "",
    ]
    if "error" in found.get("throughput", {}):
        lines += [f"Throughput: {found['throughput']['error']}", ""]
    ssim = found.get("ssim", {})
    if "error" in ssim:
        lines += [f"SSIM: {ssim['error']}", ""]
    elif ssim:
        lines += [
            f"SSIM of {ssim['images']} images against skimage: maximum difference "
            f"{ssim['float64_max_difference']:.1e} (float64 path, {ssim['float64_seconds']} s), "
            f"{ssim['float32_max_difference']:.1e} (float32, {ssim['float32_seconds']} s).",
            "",
        ]
    study_rows = []
    for s in found.get("studies", []):
        if "error" in s:
            study_rows.append([s["workers"], "-", "-", "-", s["error"]])
            continue
        logged = "; ".join(f"{w}: {d or 'NOT LOGGED'}" for w, d in s["worker_devices"].items())
        study_rows.append(
            [s["workers"], s["trials"], s["wall_s"], f"{s['trials_per_hour']:.0f}", logged]
        )
    if study_rows:
        header = ["workers", "trials", "wall s", "trials/hour", "device each worker logged"]
        lines += [markdown_table(header, study_rows, list("rrrrl")), ""]
    return "\n".join(lines)


def write_report(out: Path, stem: str, title: str, results: dict[str, Any]) -> None:
    """Merge this run's backends into the JSON file `stem` in `out`; rewrite its markdown."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.json"
    merged: dict[str, Any] = {"backends": {}}
    if path.exists():
        with contextlib.suppress(ValueError):
            merged = json.loads(path.read_text())
    merged.setdefault("backends", {}).update(results["backends"])
    for found in merged["backends"].values():  # sections kept from an earlier run
        found.setdefault("when", merged.get("when"))
        found.setdefault("machine", merged.get("machine"))
    merged.update({k: v for k, v in results.items() if k != "backends"})
    path.write_text(json.dumps(merged, indent=1) + "\n")
    parts = [
        f"# {title}",
        "",
        f"Written by `python bench/gpu_check.py {' '.join(merged.get('argv', []))}` at "
        f"{merged['when']} (each backend's section says when it was measured; a run of some "
        f"backends keeps the others' sections); machine: {merged['machine']}.",
        "",
        merged["mode"],
        "",
    ]
    parts += [throughput_table(merged["backends"]), ""]
    parts += [backend_section(n, f) for n, f in merged["backends"].items()]
    (out / f"{stem}.md").write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {out / (stem + '.md')} and {path}")


# -- the command ------------------------------------------------------------------------------


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def has_gpu() -> bool:
    """nvidia-smi lists a GPU (the launcher's own test; imports no backend)."""
    sys.path.insert(0, str(REPO))
    from search.workers import detect_gpus

    try:
        return bool(detect_gpus())
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        default="auto",
        help="comma-separated Keras backends to check, or auto: the first installed of "
        + ", ".join(BACKENDS),
    )
    parser.add_argument("--out", type=Path, help="folder for the results (default: see above)")
    parser.add_argument("--cpu-real-sizes", action="store_true", help="real sizes on the CPU")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:  # a child: one step, its result as the last line
        sys.path.insert(0, str(REPO))
        result = STEPS[args.step](json.loads(args.settings))
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    have = installed_backends()
    names = have[:1] if args.backend == "auto" else args.backend.split(",")
    unknown = [n for n in names if n not in BACKENDS or n not in have]
    if not names or unknown:
        print(f"error: backend not installed or unknown: {', '.join(unknown) or 'none'} "
              f"(installed: {', '.join(have) or 'none'})", file=sys.stderr)  # fmt: skip
        return 2
    gpu = has_gpu()
    settings = plan(gpu, args.cpu_real_sizes)
    limits = settings["limits"]
    if gpu:
        mode = "GPU found: real sizes."
    elif args.cpu_real_sizes:
        mode = "No GPU found: real sizes on the CPU (--cpu-real-sizes), float32."
    else:
        mode = "No GPU found: the steps ran at tiny sizes on the CPU (numbers mean nothing)."
    print(mode, flush=True)
    results: dict[str, Any] = {
        "argv": list(sys.argv[1:] if argv is None else argv),
        "when": timestamp(),
        "machine": machine(tensorflow=False),
        "gpu": gpu,
        "mode": mode,
        "plan": settings,
        "backends": {},
    }
    started = time.monotonic()
    for name in names:
        print(f"== {name}", flush=True)
        found: dict[str, Any] = {"when": timestamp(), "machine": machine(tensorflow=False)}
        found["devices"] = run_child("devices", name, settings, limits["devices"])
        print(f"devices: {found['devices']}", flush=True)
        budget = {**settings, "budget_s": limits["throughput"] - 30}
        found["throughput"] = run_child("throughput", name, budget, limits["throughput"])
        found["ssim"] = run_child("ssim", name, settings, limits["ssim"])
        print(f"ssim: {found['ssim']}", flush=True)
        found["studies"] = []
        for workers in settings["workers"]:
            s = run_study(name, gpu, settings["study"], workers, limits["study"])
            print(f"study, {workers} worker(s){' per GPU' if gpu else ''}: {s}", flush=True)
            found["studies"].append(s)
        results["backends"][name] = found
    results["total_s"] = round(time.monotonic() - started, 1)
    print(f"total {results['total_s']} s", flush=True)
    if args.out is not None:
        out = args.out
    elif gpu or args.cpu_real_sizes:
        out = RESULTS
    else:
        print("no GPU: results not written (give --out DIR to keep them)")
        return 0
    stem = "gpu" if gpu or not args.cpu_real_sizes else "backends_cpu"
    title = "GPU check" if gpu else "Backends on the CPU"
    write_report(out, stem, title, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
