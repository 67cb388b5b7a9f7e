"""Record real learning curves for the pruning benchmark (bench_pruning.py replays them).

What is recorded: `--configs` configurations drawn at random (Optuna's RandomSampler, fixed
seed) from the default search space of `python -m search run` (every parameter, loss and beta
included), each trained under `--seeds` seeds for `--epochs` epochs with `search.training.
train_vae` on the bundled MNIST subset with the quick preset's images and batch size. Per
epoch: validation SSIM, validation MSE and the epoch's seconds (the first epoch carries the
first trace of the step); per run the set-up and final-scoring seconds outside the epochs.

Recording is resumable: every finished run is appended to a per-worker file
(`bench/data/<name>.part-<i>.jsonl`); a restart skips the runs already there, and once every
run is in, the parts are merged into `bench/data/<name>.json.gz` (the committed file) and
removed. `--name` keeps recordings of other horizons apart: `curves` holds the 12-epoch
recording, `curves30` the 30-epoch one (the full preset's horizon, on the quick preset's images
so that it fits in about two hours here). Unmerged parts may be committed: a later session
resumes from them. Runs are shared out over `--workers` processes with the cores split between them,
as `python -m search run --workers N` does on a CPU.

Usage: python bench/record_curves.py [--configs 48] [--seeds 4] [--epochs 12] [--workers 2]
                                    [--name curves]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, timestamp

DATA = REPO / "bench" / "data"
NAME = "curves"  # set from --name: the recording's file stem
SPACE_SEED = 20261124  # the draw of configurations
SEED_BASE = 1000  # run seeds are SEED_BASE + 0, 1, ...
SCENARIO = {"data": "bundled", "preset": "quick", "split_seed": 0}


def draw_configurations(n: int) -> list[dict[str, Any]]:
    """`n` configurations from the run's default search space, the same on every call."""
    import optuna

    from search.space import default_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SPACE_SEED))
    space = default_space()
    configs = []
    for _ in range(n):
        trial = study.ask(space)
        configs.append(dict(trial.params))
        study.tell(trial, 0.0)
    return configs


def run_key(config_id: int, seed: int) -> str:
    return f"{config_id}/{seed}"


def curves_path() -> Path:
    return DATA / f"{NAME}.json.gz"


def part_path(worker: int) -> Path:
    return DATA / f"{NAME}.part-{worker}.jsonl"


def load_done() -> dict[str, dict[str, Any]]:
    """Every recorded run, from the merged file and any unmerged parts."""
    runs: dict[str, dict[str, Any]] = {}
    if curves_path().exists():
        with gzip.open(curves_path(), "rt") as f:
            for run in json.load(f)["runs"]:
                runs[run_key(run["config_id"], run["seed"])] = run
    for part in sorted(DATA.glob(f"{NAME}.part-*.jsonl")):
        for line in part.read_text().splitlines():
            if line.strip():  # a line cut by a kill is incomplete JSON: record that run again
                try:
                    run = json.loads(line)
                except json.JSONDecodeError:
                    continue
                runs[run_key(run["config_id"], run["seed"])] = run
    return runs


def record_worker(args: argparse.Namespace, worker: int) -> None:
    """Train this worker's share of the missing runs, appending each as it finishes."""
    from search.data import load_mnist
    from search.defaults import PRESETS
    from search.training import TrainConfig, TrainingFailed, train_vae

    preset = PRESETS[SCENARIO["preset"]]
    configs = draw_configurations(args.configs)
    done = load_done()
    jobs = [
        (cid, SEED_BASE + s)
        for s in range(args.seeds)  # seed-major: a kill leaves whole seeds, not whole configs
        for cid in range(len(configs))
        if run_key(cid, SEED_BASE + s) not in done
    ][worker :: args.workers]
    data = load_mnist(SCENARIO["data"], seed=SCENARIO["split_seed"], subset=preset.subset)
    started = time.perf_counter()
    with part_path(worker).open("a") as out:
        for i, (cid, seed) in enumerate(jobs, start=1):
            config = TrainConfig(
                epochs=args.epochs,
                batch_size=preset.batch_size,
                seed=seed,
                validation_subset=preset.validation_subset,
                train_eval_subset=preset.train_eval_subset,
                test_eval_subset=preset.test_eval_subset,
            )
            run: dict[str, Any] = {"config_id": cid, "seed": seed, "params": configs[cid]}
            try:
                result = train_vae(configs[cid], data, config)
                curve, wall = result.curve, result.wall_time_s
                run["n_params"] = result.n_params
            except TrainingFailed as exc:  # recorded too: a replay must meet failures
                curve, wall = exc.curve, float("nan")
                run["failed"] = exc.reason
            run["curve"] = [
                {k: r[k] for k in ("epoch", "val_ssim", "val_mse", "seconds")} for r in curve
            ]
            if wall == wall:
                run["fixed_seconds"] = wall - sum(r["seconds"] for r in curve)
            out.write(json.dumps(run) + "\n")
            out.flush()
            last = curve[-1] if curve else {"val_ssim": float("nan"), "val_mse": float("nan")}
            print(
                f"[worker {worker}] {i}/{len(jobs)} config {cid} seed {seed}: "
                f"SSIM {last['val_ssim']:.4f} MSE {last['val_mse']:.5f} "
                f"({sum(r['seconds'] for r in curve):.1f} s; "
                f"{time.perf_counter() - started:.0f} s so far)",
                flush=True,
            )


def merge(args: argparse.Namespace, elapsed: float) -> None:
    runs = load_done()
    expected = {run_key(c, SEED_BASE + s) for c in range(args.configs) for s in range(args.seeds)}
    missing = expected - set(runs)
    if missing:
        print(f"{len(missing)} runs still missing; run the same command again", file=sys.stderr)
        raise SystemExit(1)
    previous: dict[str, Any] = {}
    if curves_path().exists():
        with gzip.open(curves_path(), "rt") as f:
            previous = json.load(f)
    table = {
        "command": "python bench/record_curves.py " + " ".join(sys.argv[1:]),
        "recorded": previous.get("recorded", timestamp()),
        "machine": previous.get("machine", machine()),
        "scenario": {**SCENARIO, "epochs": args.epochs, "space_seed": SPACE_SEED},
        "workers": args.workers,
        "recording_wall_seconds": previous.get("recording_wall_seconds", 0.0) + elapsed,
        "configs": draw_configurations(args.configs),
        "seeds": [SEED_BASE + s for s in range(args.seeds)],
        "runs": sorted((runs[k] for k in expected), key=lambda r: (r["config_id"], r["seed"])),
    }
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = curves_path().with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump(table, f, separators=(",", ":"))
    tmp.replace(curves_path())
    for part in DATA.glob(f"{NAME}.part-*.jsonl"):
        part.unlink()
    print(f"wrote {curves_path().relative_to(REPO)}: {len(table['runs'])} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="curves", help="file stem under bench/data/")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the parent
    args = parser.parse_args()
    global NAME
    NAME = args.name
    DATA.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        record_worker(args, args.worker)
        return
    started = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    env = {
        **os.environ,
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(min(2, threads)),
        "OMP_NUM_THREADS": str(threads),
    }
    procs = [
        subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--worker", str(w)], env=env)
        for w in range(args.workers)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a recording worker failed (exit codes {codes})")
    merge(args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
