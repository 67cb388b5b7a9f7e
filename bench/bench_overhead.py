"""Per-trial overhead outside training, in a real study, for pruned and complete trials.

Runs `python -m search run --preset quick` as a person would (bundled data, pruning on, the
run's default rule, no confirmation runs, no report), on a fresh SQLite file in a temporary
folder, then reads every finished trial back from storage:

- trial seconds: Optuna's datetime_complete - datetime_start, which holds the sampler's
  suggestion, the trial's user-attr writes, `train_vae` and, for a complete trial, its
  artifacts (reconstruction grid, latents, prior samples, weights of Pareto trials).
- training seconds: the sum of the trial's `curve` rows' `seconds`, i.e. its epochs, each from
  the epoch's start to the end of the validation-subset scoring that the pruning rule reads
  (the first epoch holds the trace of the training step).
- overhead = trial seconds - training seconds: everything else. Two parts of it are told apart
  with the stored `wall_time_s` (train_vae from model build to its last scoring): inside
  train_vae but outside the epochs (model build and compile, the pruning hook after each
  epoch, the final scoring of the validation, training and test subsets, which train_vae also
  does for a pruned trial), and outside `wall_time_s` (the suggestion, the budget check, one
  storage write per user attr, train_vae's preparation before its clock starts:
  `clear_session` with its garbage collection and the tf.data pipeline; artifacts).
- between trials: the next trial's datetime_start - this one's datetime_complete (Optuna's
  tell, the run's progress callback, the next trial's creation), which no trial's duration
  holds; reported beside the overhead, not in it.

The usual trial of a pruned search is a pruned one, so the two states are reported apart:
median and range of the overhead in seconds and as a share of the trial's duration.

Usage: python bench/bench_overhead.py [--trials 10] [--preset quick] [--epochs E]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from common import REPO, SHARED_NOTE, machine, markdown_table, median, timestamp, write_result
from optuna.trial import TrialState

TARGET = 0.05  # overhead <= 5% of a trial's duration
STUDY = "bench-overhead"


def run_study(workdir: Path, preset: str, trials: int, epochs: int | None) -> dict[str, Any]:
    """One real `python -m search run`; returns the command shown, its seconds and storage URL."""
    storage = f"sqlite:///{workdir}/{STUDY}.db"
    options = ["--preset", preset, "--trials", str(trials)]
    options += ["--epochs", str(epochs)] if epochs else []
    # --confirm 0: exactly `trials` sampled trials; confirmation runs are designed trials,
    # never pruned, and would only add complete ones.
    options += ["--confirm", "0", "--data", "bundled", "--no-report", "--study", STUDY]
    command = [sys.executable, "-m", "search", "run", *options, "--storage", storage]
    command += ["--artifacts", str(workdir / "artifacts")]
    started = time.perf_counter()
    # cwd outside the repository: nothing of this run lands in the working tree.
    done = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        failed = f"{' '.join(command)} failed ({done.returncode})"
        raise RuntimeError(f"{failed}:\n{done.stderr[-3000:]}")
    shown = " ".join(["python -m search run", *options])  # the storage and folder are temporary
    return {"command": shown, "seconds": seconds, "storage": storage, "log": done.stderr}


def trial_rows(storage: str) -> list[dict[str, Any]]:
    """Each finished trial's times, in trial order (see the module docstring)."""
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    rows = []
    for i, t in enumerate(trials):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or t.duration is None:
            continue
        attrs = t.user_attrs
        trial_s = t.duration.total_seconds()
        training_s = sum(row["seconds"] for row in attrs["curve"])
        following = trials[i + 1] if i + 1 < len(trials) else None
        gap = (
            (following.datetime_start - t.datetime_complete).total_seconds()
            if following is not None and following.datetime_start and t.datetime_complete
            else None
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "epochs_run": attrs["epochs_run"],
                "trial_s": trial_s,
                "training_s": training_s,
                "wall_time_s": attrs["wall_time_s"],
                "overhead_s": trial_s - training_s,
                "overhead_share": (trial_s - training_s) / trial_s,
                "inside_train_vae_s": attrs["wall_time_s"] - training_s,
                "outside_wall_time_s": trial_s - attrs["wall_time_s"],
                "gap_to_next_s": gap,
            }
        )
    return rows


def median_range(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    if unit == "%":
        return f"{median(values):.1%} ({min(values):.1%}-{max(values):.1%})"
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summary_rows(rows: list[dict[str, Any]]) -> tuple[list[list[Any]], dict[str, Any]]:
    table, verdicts = [], {}
    for state in ("pruned", "complete"):
        chosen = [r for r in rows if r["state"] == state]
        if not chosen:
            table.append([state, 0, *["-"] * 7])
            continue
        share = median([r["overhead_share"] for r in chosen])
        verdicts[state] = {"median_share": share, "met": share <= TARGET, "trials": len(chosen)}
        gaps = [r["gap_to_next_s"] for r in chosen if r["gap_to_next_s"] is not None]
        table.append(
            [
                state,
                len(chosen),
                median_range([float(r["epochs_run"]) for r in chosen]).replace(".00", ""),
                median_range([r["trial_s"] for r in chosen]),
                median_range([r["overhead_s"] for r in chosen]),
                median_range([r["overhead_share"] for r in chosen], "%"),
                median_range([r["inside_train_vae_s"] for r in chosen]),
                median_range([r["outside_wall_time_s"] for r in chosen]),
                median_range(gaps),
            ]
        )
    return table, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="sampled trials (default 10)")
    parser.add_argument("--preset", default="quick", choices=["smoke", "quick", "full"])
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the preset's)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    started = time.perf_counter()
    described = machine(tensorflow=False)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        run = run_study(Path(tmp), args.preset, args.trials, args.epochs)
        rows = trial_rows(run["storage"])
    summary, verdicts = summary_rows(rows)
    per_trial = markdown_table(
        [
            "trial",
            "state",
            "epochs",
            "trial s",
            "training s",
            "overhead s",
            "overhead %",
            "of it: in train_vae, outside epochs s",
            "of it: outside wall_time_s s",
            "gap to next trial s",
        ],
        [
            [
                r["number"],
                r["state"],
                r["epochs_run"],
                f"{r['trial_s']:.2f}",
                f"{r['training_s']:.2f}",
                f"{r['overhead_s']:.2f}",
                f"{r['overhead_share']:.1%}",
                f"{r['inside_train_vae_s']:.2f}",
                f"{r['outside_wall_time_s']:.2f}",
                "-" if r["gap_to_next_s"] is None else f"{r['gap_to_next_s']:.2f}",
            ]
            for r in rows
        ],
        ["r", "l", "r", "r", "r", "r", "r", "r", "r", "r"],
    )
    summary_table = markdown_table(
        [
            "state",
            "trials",
            "epochs run",
            "trial s",
            "overhead s",
            "overhead % of trial",
            "of it: in train_vae, outside epochs s",
            "of it: outside wall_time_s s",
            "gap to next trial s",
        ],
        summary,
        ["l", "r", "r", "r", "r", "r", "r", "r", "r"],
    )
    in_trials = sum(r["trial_s"] for r in rows)
    headline = "; ".join(
        f"{state} trials {v['median_share']:.1%} (median of {v['trials']}; <= "
        f"{TARGET:.0%}: {'met' if v['met'] else 'not met'})"
        for state, v in verdicts.items()
    )
    report = "\n\n".join(
        [
            "# Per-trial overhead outside training (bench/bench_overhead.py)",
            f"Run {timestamp()} in {time.perf_counter() - started:.0f} s. Machine: {described}.",
            SHARED_NOTE.replace(
                "variants are interleaved and medians reported, and CPU-seconds "
                "(less sensitive to the load) are given beside them",
                "medians and ranges are reported",
            ),
            f"Command (fresh SQLite file and artifact folder in a temporary folder, its working "
            f"directory): `{run['command']}`. It took {run['seconds']:.0f} s in all, "
            f"{in_trials:.0f} s of it inside trials (the rest: Python and TensorFlow start, "
            f"data loading, study creation, gaps between trials).",
            "Overhead = trial duration in storage (datetime_complete - datetime_start) - the "
            "trial's training (the sum of its curve's epoch seconds, each epoch with the "
            "validation-subset scoring the pruning rule reads). It splits into the part inside "
            "`train_vae` but outside the epochs (`wall_time_s` - training: model build and "
            "compile, the pruning hook after each epoch, the final scoring of the validation, "
            "training and test subsets, done for pruned trials too) and the part outside "
            "`wall_time_s` (trial - `wall_time_s`: the suggestion, the budget check, one storage "
            "write per user attr, train_vae's preparation before its clock starts: "
            "`clear_session` with its garbage collection and the tf.data pipeline; the "
            "artifacts of complete trials). The gap between one trial's end and the next one's "
            "start is in no trial and is shown apart. Median (range):",
            summary_table,
            f"**Headline: overhead outside training, median share of trial duration: {headline}.**",
            "Every trial:",
            per_trial,
        ]
    )
    write_result(
        "overhead",
        report,
        {
            "machine": described,
            "command": run["command"],
            "run_seconds": run["seconds"],
            "target_share": TARGET,
            "verdicts": verdicts,
            "trials": rows,
        },
    )


if __name__ == "__main__":
    main()
