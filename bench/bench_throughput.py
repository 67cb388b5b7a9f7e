"""Trials per hour on a CPU-only machine: 1 to os.cpu_count() workers, and a trial's fixed cost.

Part 1, throughput. Real `python -m search run --preset quick --data bundled --confirm 0
--no-pruning --no-report` subprocesses, each in its own temporary folder, all training the same
configuration: `--sweep latent_dim=8 --repeats T` enqueues T trials of the baseline
configuration (k=8, 2 convs of 32, dense 64, bce, beta 1) under T seeds; designed trials are
never pruned, so every trial trains its 6 epochs. Worker counts run interleaved, round by
round, the order reversed every other round, so a swing in the machine's load hits every count
alike. Two rates per run: end to end (T / the command's wall time, start-up of every process
included: what a user waits for), and steady (finished trials over the span from the first
trial's start to the last one's end, read back from the study: start-up excluded, what a long
study approaches). The ratio of each worker count against 1 worker is taken per round and the
median reported.

Part 2, fixed cost of a trial. In a child process, `run_study` (the real path: Objective,
storage, artifacts) trains `--fixed-trials` trials of the same configuration for
`--fixed-epochs` epochs; wrappers around the functions a trial calls time its parts: clearing
Keras' state, building, compiling, the first epoch against a steady one (the first trace),
the final scoring after training, writing the outputs, uploading them, and the rest (storage,
sampler). The first trial of a process is reported apart (it pays one-time start-up). The
child runs once on this tree (after) and, with `--before REV`, once on a `git archive` export of
REV (before: the unchanged code, measured the same way in the same run, interleaved).

Usage: python bench/bench_throughput.py [--trials 6] [--rounds 2] [--before REV]
       [--fixed-trials 4] [--fixed-epochs 3] [--skip-throughput] [--skip-fixed]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, SHARED_NOTE, machine, markdown_table, median, timestamp, write_result

RUN = [
    "run",
    "--preset",
    "quick",
    "--data",
    "bundled",
    "--confirm",
    "0",
    "--no-pruning",
    "--no-report",
    "--sweep",
    "latent_dim=8",
]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# -- part 1: trials per hour -----------------------------------------------------------------


def run_once(workers: int, trials: int, code: Path) -> dict[str, Any]:
    """One real `run` with `workers` workers in a fresh folder; its wall time and trial spans."""
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("VAE_SEARCH_STORAGE", None)
        # Journal storage for every count, so 1 worker and N differ only in the processes.
        storage = f"journal:///{Path(tmp, 'study.log').as_posix()}"
        command = [
            sys.executable,
            "-m",
            "search",
            *RUN,
            "--repeats",
            str(trials),
            "--workers",
            str(workers),
            "--storage",
            storage,
            "--study",
            "tp",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        spans = trial_spans(storage, code, tmp)
    complete = [s for s in spans if s["state"] == "COMPLETE"]
    if len(complete) != trials:
        raise SystemExit(f"expected {trials} complete trials, got {spans}")
    first = min(s["start"] for s in complete)
    last = max(s["end"] for s in complete)
    return {
        "workers": workers,
        "trials": trials,
        "wall_s": wall,
        "steady_span_s": last - first,
        "trial_s": [s["end"] - s["start"] for s in complete],
        "per_hour": trials / wall * 3600,
        "steady_per_hour": trials / (last - first) * 3600,
    }


SPANS = """
import json, sys, optuna
from search.storage import open_storage
study = optuna.load_study(study_name="tp", storage=open_storage(sys.argv[1]))
print(json.dumps([
    {"state": t.state.name, "start": t.datetime_start.timestamp(),
     "end": t.datetime_complete.timestamp()}
    for t in study.get_trials(deepcopy=False) if t.datetime_complete
]))
"""


def trial_spans(storage: str, code: Path, cwd: str) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", SPANS, storage],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def throughput(counts: list[int], trials: int, rounds: int) -> list[dict[str, Any]]:
    runs = []
    for round_index in range(rounds):
        order = counts if round_index % 2 == 0 else counts[::-1]
        for workers in order:
            result = run_once(workers, trials, REPO)
            result["round"] = round_index
            runs.append(result)
            print(
                f"round {round_index} workers {workers}: {result['wall_s']:.1f} s, "
                f"{result['per_hour']:.0f} trials/h end to end, "
                f"{result['steady_per_hour']:.0f} steady; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return runs


def throughput_table(runs: list[dict[str, Any]], counts: list[int]) -> tuple[str, list[Any]]:
    rows, summary = [], []
    for workers in counts:
        mine = [r for r in runs if r["workers"] == workers]
        ratios, steady_ratios = [], []
        for r in mine:
            base = next(b for b in runs if b["workers"] == 1 and b["round"] == r["round"])
            ratios.append(r["per_hour"] / base["per_hour"])
            steady_ratios.append(r["steady_per_hour"] / base["steady_per_hour"])
        entry = {
            "workers": workers,
            "threads_each": max(1, cores() // workers),
            "per_hour": median([r["per_hour"] for r in mine]),
            "steady_per_hour": median([r["steady_per_hour"] for r in mine]),
            "ratio": median(ratios),
            "steady_ratio": median(steady_ratios),
            "ratios": ratios,
            "wall_s": [r["wall_s"] for r in mine],
            "median_trial_s": median([t for r in mine for t in r["trial_s"]]),
        }
        summary.append(entry)
        rows.append(
            [
                workers,
                entry["threads_each"],
                f"{entry['per_hour']:.0f}",
                f"{entry['ratio']:.2f}x",
                f"{entry['steady_per_hour']:.0f}",
                f"{entry['steady_ratio']:.2f}x",
                ", ".join(f"{w:.1f}" for w in entry["wall_s"]),
                f"{entry['median_trial_s']:.1f}",
            ]
        )
    header = [
        "workers",
        "threads each",
        "trials/hour (end to end)",
        "vs 1 worker",
        "trials/hour (steady)",
        "vs 1 worker",
        "wall s per run",
        "median trial s",
    ]
    return markdown_table(header, rows, ["r"] * len(header)), summary


# -- part 2: a trial's fixed cost --------------------------------------------------------------


def fixed_cost_child(trials: int, epochs: int, out: Path) -> None:
    """Run `trials` trials in this process through `run_study`; time each part of each."""
    import keras
    import optuna

    import search.model
    import search.outputs
    import search.training
    from search import data as search_data
    from search import records
    from search.model import VAE
    from search.run import RunOptions, run_study
    from search.run.objective import Objective

    parts: list[dict[str, float]] = []
    state = {"fitting": False}

    def timed(owner: Any, name: str, part: str, *, when=None) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if parts and (when is None or when()):
                    parts[-1][part] = parts[-1].get(part, 0.0) + time.perf_counter() - started

        setattr(owner, name, wrapper)

    loads: list[float] = []
    original_load = search_data.load_mnist

    def load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = original_load(*args, **kwargs)
        loads.append(time.perf_counter() - started)
        return result

    search_data.load_mnist = load  # run_study imports it from the module at call time
    timed(keras.backend, "clear_session", "clear_session")
    timed(search.model, "build_vae", "build")
    timed(VAE, "compile", "compile")
    timed(VAE, "fit", "fit")
    timed(search.training, "score", "final_scoring", when=lambda: not state["fitting"])
    timed(search.outputs, "write_trial_outputs", "write_outputs")
    timed(optuna.artifacts, "upload_artifact", "upload")
    timed(search.training, "train_vae", "train_vae")
    original_fit = VAE.fit

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        state["fitting"] = True
        try:
            return original_fit(self, *args, **kwargs)
        finally:
            state["fitting"] = False

    VAE.fit = fit  # type: ignore[method-assign]
    original_call = Objective.__call__

    def call(self: Any, trial: Any) -> Any:
        parts.append({})
        started = time.perf_counter()
        try:
            return original_call(self, trial)
        finally:
            parts[-1]["trial"] = time.perf_counter() - started
            curve = records.trial_attrs(trial).get(records.CURVE, [])
            parts[-1]["epochs"] = [float(e["seconds"]) for e in curve]

    Objective.__call__ = call  # type: ignore[method-assign]
    started = time.perf_counter()
    code = run_study(
        RunOptions(
            trials=trials,
            study="fixed",
            storage="journal:///fixed.log",
            data="bundled",
            preset="quick",
            epochs=epochs,
            pruning=False,
            workers=1,
            report=False,
            sweep=["latent_dim=8"],
            repeats=trials,
            confirm=0,
            argv=["run"],
        )
    )
    if code != 0:
        raise SystemExit(f"run_study returned {code}")
    out.write_text(
        json.dumps({"parts": parts, "data_load_s": loads, "run_s": time.perf_counter() - started})
    )


PARTS = [
    ("data_load", "dataset load (once per process, not per trial)"),
    ("clear_session", "Keras clear_session + gc"),
    ("build", "model build"),
    ("compile", "compile"),
    ("first_trace", "first epoch minus a steady epoch (tracing)"),
    ("fit_other", "fit outside its epochs (dataset, iterator, end)"),
    ("final_scoring", "final scoring (validation, train subset, test)"),
    ("train_other", "rest of train_vae (tf.data pipeline, bookkeeping)"),
    ("write_outputs", "artifact writing (grid, latents, samples, diagnostics, weights)"),
    ("upload", "artifact upload into the store"),
    ("trial_other", "rest of the trial (storage, sampler, user attrs)"),
]


def breakdown(part: dict[str, Any]) -> dict[str, float]:
    epochs = part["epochs"]
    steady = median(epochs[1:]) if len(epochs) > 1 else 0.0
    fixed = {
        "clear_session": part.get("clear_session", 0.0),
        "build": part.get("build", 0.0),
        "compile": part.get("compile", 0.0),
        "first_trace": epochs[0] - steady,
        "fit_other": part.get("fit", 0.0) - sum(epochs),
        "final_scoring": part.get("final_scoring", 0.0),
        "write_outputs": part.get("write_outputs", 0.0) - 0.0,
        "upload": part.get("upload", 0.0),
    }
    inside = sum(
        fixed[k] for k in ("clear_session", "build", "compile", "final_scoring")
    ) + part.get("fit", 0.0)
    fixed["train_other"] = part.get("train_vae", 0.0) - inside
    fixed["trial_other"] = (
        part["trial"] - part.get("train_vae", 0.0) - fixed["write_outputs"] - fixed["upload"]
    )
    fixed["steady_epoch"] = steady
    fixed["trial"] = part["trial"]
    fixed["fixed_total"] = part["trial"] - steady * len(epochs)
    return fixed


def fixed_cost(code: Path, trials: int, epochs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as tmp:
        out = Path(tmp, "parts.json")
        env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("VAE_SEARCH_STORAGE", None)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--fixed-child",
            str(out),
            "--code",
            str(code),
            "--fixed-trials",
            str(trials),
            "--fixed-epochs",
            str(epochs),
        ]
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"fixed-cost child failed:\n{done.stderr[-3000:]}")
        raw = json.loads(out.read_text())
    rows = [breakdown(p) for p in raw["parts"]]
    return {"raw": raw, "first": rows[0], "later": rows[1:]}


def later_median(result: dict[str, Any], key: str) -> float:
    return median([row[key] for row in result["later"]])


def fixed_table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    header = ["part", *(f"{n}: first trial s" for n in names), *(f"{n}: later s" for n in names)]
    rows = []
    for key, label in [*PARTS, ("fixed_total", "**fixed cost per trial**")]:
        cells = [label]
        for name in names:
            r = results[name]
            value = median(r["raw"]["data_load_s"]) if key == "data_load" else r["first"][key]
            cells.append(f"{value:.3f}")
        for name in names:
            r = results[name]
            if key == "data_load":
                cells.append("-")
            else:
                cells.append(f"{later_median(r, key):.3f}")
        rows.append(cells)
    for key, label in (("steady_epoch", "one steady epoch"), ("trial", "whole trial")):
        rows.append(
            [
                label,
                *(f"{results[n]['first'][key]:.3f}" for n in names),
                *(f"{later_median(results[n], key):.3f}" for n in names),
            ]
        )
    return markdown_table(header, rows, ["l"] + ["r"] * (len(header) - 1))


def export_revision(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per run (part 1)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (part 1)")
    parser.add_argument("--max-workers", type=int, default=cores(), help="largest worker count")
    parser.add_argument("--fixed-trials", type=int, default=4, help="trials in part 2")
    parser.add_argument("--fixed-epochs", type=int, default=3, help="epochs per trial in part 2")
    parser.add_argument("--fixed-rounds", type=int, default=1, help="before/after pairs")
    parser.add_argument("--before", metavar="REV", help="also time part 2 on this git revision")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-fixed", action="store_true")
    parser.add_argument("--fixed-child", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--code", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.fixed_child:
        # The code under test comes first on the path (this tree, or an export of --before).
        sys.path.insert(0, str(Path(args.code).resolve()))
        fixed_cost_child(args.fixed_trials, args.fixed_epochs, Path(args.fixed_child))
        return

    started = time.perf_counter()
    described = machine(tensorflow=False)
    data: dict[str, Any] = {"machine": described, "when": timestamp()}
    sections = [
        "# Trials per hour on a CPU, and a trial's fixed cost (bench/bench_throughput.py)",
        "",
        f"Run {timestamp()}. Machine: {described}.",
        "",
        SHARED_NOTE,
    ]
    if not args.skip_throughput:
        counts = list(range(1, max(1, args.max_workers) + 1))
        runs = throughput(counts, args.trials, args.rounds)
        table, summary = throughput_table(runs, counts)
        data["throughput"] = {"runs": runs, "summary": summary, "trials": args.trials}
        sections += [
            "",
            "## Trials per hour by worker count",
            "",
            f"`python -m search {' '.join(RUN)} --repeats {args.trials} --workers N "
            "--storage journal:///...` in a fresh folder per run: "
            f"{args.trials} trials of one configuration (6 epochs each, never pruned), "
            f"{args.rounds} interleaved rounds, the CPU cores split between the workers by "
            "`--workers` (TF_NUM_INTRAOP_THREADS). End to end: trials / the command's wall "
            "time, start-up included. Steady: trials / (last trial's end - first trial's "
            "start). Ratios against 1 worker in the same round, median over rounds.",
            "",
            table,
        ]
    if not args.skip_fixed:
        results: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
            codes = {"after": REPO}
            if args.before:
                codes = {"before": export_revision(args.before, Path(tmp)), "after": REPO}
            for _ in range(args.fixed_rounds):
                for name, code in codes.items():
                    result = fixed_cost(code, args.fixed_trials, args.fixed_epochs)
                    if name in results:  # keep every later trial of every round
                        results[name]["later"] += [result["first"], *result["later"]][1:]
                        results[name]["raw"]["data_load_s"] += result["raw"]["data_load_s"]
                    else:
                        results[name] = result
                    print(
                        f"{name}: fixed cost per later trial "
                        f"{later_median(result, 'fixed_total'):.2f} s",
                        flush=True,
                    )
        data["fixed_cost"] = results
        before_note = (
            f"`before` is revision `{args.before}` (the code before this change), exported "
            "with `git archive` and timed by the same child, interleaved with `after` (this "
            "tree). "
            if args.before
            else ""
        )
        sections += [
            "",
            "## A trial's fixed cost",
            "",
            f"{args.fixed_trials} trials of the baseline configuration at the quick preset, "
            f"{args.fixed_epochs} epochs each, in one process through `run_study` (journal "
            "storage, no pruning, artifacts written as in a study). Each part is timed by a "
            "wrapper around the function that does it; a steady epoch is the median of epochs "
            "2 onward (training plus the per-epoch validation scoring), and the fixed cost is "
            "the trial's time minus its epochs at the steady rate. 'later' is the median over "
            "the trials after the first in the process (the first also pays one-time start-up). "
            + before_note,
            "",
            fixed_table(results),
        ]
    sections += ["", f"Whole benchmark: {time.perf_counter() - started:.0f} s."]
    write_result("throughput", "\n".join(sections), data)


if __name__ == "__main__":
    main()
