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

The first epoch also holds the trace of the train step, which is a fixed cost too, so each
trial's *fixed cost* is its duration minus what its epochs would cost at the steady-state
pace: trial seconds - epochs run x the median seconds of its epochs after the first.

Before/after: `--baseline REV` runs the same command on the code at git revision REV (a
temporary worktree) and on this tree, alternating the order over `--pairs` pairs. The study's
seed fixes the sampled configurations and, on a CPU, the pruning decisions, so trial number n
of one arm is trial number n of the other: each trial's fixed cost is compared paired, as
this tree's over the baseline's (the baseline against itself is 1.0 by construction).

A second study is measured the same way: a sweep with repeats (`--sweep latent_dim=2,4
--repeats 3` by default), whose repeats of one configuration follow each other, so a run may
reuse the previous trial's traced train step.

Usage: python bench/bench_overhead.py [--trials 10] [--preset quick] [--epochs E]
       [--sweep NAME=V1,V2 | none] [--repeats 3] [--baseline REV] [--pairs 2]
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

from search import records

TARGET = 0.05  # overhead <= 5% of a trial's duration
STUDY = "bench-overhead"


def run_study(
    workdir: Path,
    preset: str,
    trials: int | None,
    epochs: int | None,
    code: Path = REPO,
    sweep: list[str] | None = None,
) -> dict[str, Any]:
    """One real `python -m search run` of the package in `code`; returns the command shown, its
    seconds and storage URL. `sweep`: extra options that enqueue a sweep (`--sweep`,
    `--repeats`); its designed trials are never pruned, and repeats of one configuration follow
    each other."""
    storage = f"sqlite:///{workdir}/{STUDY}.db"
    options = ["--preset", preset]
    options += ["--trials", str(trials)] if trials is not None else []
    options += ["--epochs", str(epochs)] if epochs else []
    options += sweep or []
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
        env={**os.environ, "PYTHONPATH": str(code)},
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
        attrs = records.trial_attrs(t)  # the curve is a machine record (a system attr)
        trial_s = t.duration.total_seconds()
        epoch_s = [row["seconds"] for row in records.read_curve(attrs)]
        training_s = sum(epoch_s)
        # steady pace: the median epoch after the first (which holds the trace)
        steady = median(epoch_s[1:]) if len(epoch_s) > 1 else None
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
                "first_epoch_extra_s": None if steady is None else epoch_s[0] - steady,
                "fixed_s": None if steady is None else trial_s - steady * len(epoch_s),
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
            table.append([state, 0, *["-"] * 9])
            continue
        share = median([r["overhead_share"] for r in chosen])
        fixed = [r["fixed_s"] / r["trial_s"] for r in chosen if r["fixed_s"] is not None]
        verdicts[state] = {
            "median_share": share,
            "met": share <= TARGET,
            "trials": len(chosen),
            "median_fixed_share": median(fixed) if fixed else None,
        }
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
                median_range(
                    [
                        r["first_epoch_extra_s"]
                        for r in chosen
                        if r["first_epoch_extra_s"] is not None
                    ]
                ),
                median_range(fixed, "%"),
                median_range(gaps),
            ]
        )
    return table, verdicts


SUMMARY_HEADER = [
    "state",
    "trials",
    "epochs run",
    "trial s",
    "overhead s",
    "overhead % of trial",
    "of it: in train_vae, outside epochs s",
    "of it: outside wall_time_s s",
    "first epoch over the steady pace s",
    "fixed cost % of trial",
    "gap to next trial s",
]


def per_trial_table(rows: list[dict[str, Any]]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return markdown_table(
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
            "first epoch over the steady pace s",
            "fixed cost s",
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
                seconds(r["first_epoch_extra_s"]),
                seconds(r["fixed_s"]),
                seconds(r["gap_to_next_s"]),
            ]
            for r in rows
        ],
        ["r", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    )


def paired(baseline: list[list[dict]], current: list[list[dict]]) -> dict[str, Any]:
    """Per trial number and pair: this tree's fixed cost and duration over the baseline's.

    Only trials that ran the same way in both arms (state and epochs) are paired; the count of
    the others is reported, so a changed pruning decision cannot hide in the ratio.
    """
    fixed, duration, unmatched = [], [], 0
    for base_rows, cur_rows in zip(baseline, current, strict=True):
        by_number = {r["number"]: r for r in base_rows}
        for r in cur_rows:
            b = by_number.get(r["number"])
            same = b is not None and (b["state"], b["epochs_run"]) == (r["state"], r["epochs_run"])
            if not same:
                unmatched += 1
                continue
            duration.append(r["trial_s"] / b["trial_s"])
            if r["fixed_s"] is not None and b["fixed_s"] is not None and b["fixed_s"] > 0:
                fixed.append(r["fixed_s"] / b["fixed_s"])
    return {
        "trials_paired": len(duration),
        "trials_unmatched": unmatched,
        "fixed_cost_ratio_median": median(fixed) if fixed else None,
        "fixed_cost_ratio_range": [min(fixed), max(fixed)] if fixed else None,
        "trial_seconds_ratio_median": median(duration) if duration else None,
        "trial_seconds_ratio_range": [min(duration), max(duration)] if duration else None,
    }


def headline_of(verdicts: dict[str, Any]) -> str:
    return "; ".join(
        f"{state} trials {v['median_share']:.1%} (median of {v['trials']}; <= "
        f"{TARGET:.0%}: {'met' if v['met'] else 'not met'})"
        for state, v in verdicts.items()
    )


def fixed_of(verdicts: dict[str, Any]) -> str:
    return "; ".join(
        f"{state} trials {v['median_fixed_share']:.1%}"
        for state, v in verdicts.items()
        if v["median_fixed_share"] is not None
    )


EXPLAINED = (
    "Overhead = trial duration in storage (datetime_complete - datetime_start) - the "
    "trial's training (the sum of its curve's epoch seconds, each epoch with the "
    "validation-subset scoring the pruning rule reads). It splits into the part inside "
    "`train_vae` but outside the epochs (`wall_time_s` - training: model build and "
    "compile, the pruning hook after each epoch, the final scoring of the validation, "
    "training and test subsets, done for pruned trials too) and the part outside "
    "`wall_time_s` (trial - `wall_time_s`: the suggestion, the budget check, one storage "
    "write per user attr, train_vae's preparation before its clock starts: "
    "`clear_session` with its garbage collection and the tf.data pipeline; the "
    "artifacts of complete trials). The first epoch also holds the trace of the train "
    "step: its seconds over the median of the later epochs are shown apart, and the "
    "trial's fixed cost is its duration minus its epochs at that steady pace (the "
    "overhead plus the first epoch's excess). The gap between one trial's end and the next "
    "one's start is in no trial and is shown apart. Median (range):"
)


DEFAULT_SWEEP = "latent_dim=2,4"  # 2 values x 3 repeats: repeats follow each other
DEFAULT_REPEATS = 3


def git_worktree(*args: str) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", *args], check=args[0] == "add")


def measure(
    label: str, args: argparse.Namespace, code: dict[str, Path], tmp: Path, sweep: list[str] | None
) -> tuple[list[str], dict[str, Any]]:
    """Run one kind of study in every arm (alternating, `--pairs` times with a baseline) and
    describe it: the report's sections and the JSON's entry."""
    trials = args.trials if args.trials is not None or sweep else 10
    arms: dict[str, list[list[dict[str, Any]]]] = {arm: [] for arm in code}
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs if args.baseline else 1):
        # alternate the order, so a load that drifts over the run favours neither arm
        for arm in list(code) if pair % 2 else list(code)[::-1]:
            workdir = tmp / f"{label.replace(' ', '-')}-{arm.replace(' ', '-')}-{pair}"
            workdir.mkdir()
            run = run_study(workdir, args.preset, trials, args.epochs, code[arm], sweep)
            runs.append({"arm": arm, "pair": pair, **run})
            arms[arm].append(trial_rows(run["storage"]))
            print(f"{label}, {arm}, run {pair + 1}: {run['seconds']:.0f} s", flush=True)
    rows = [r for one in arms["this tree"] for r in one]
    summary, verdicts = summary_rows(rows)
    sections = [
        f"## {label}",
        f"Command (fresh SQLite file and artifact folder in a temporary folder, its working "
        f"directory): `{runs[0]['command']}`, {len(arms['this tree'])} run(s) of this tree"
        + (f" and as many of `{args.baseline}`" if args.baseline else "")
        + f"; each took {min(r['seconds'] for r in runs):.0f}-"
        f"{max(r['seconds'] for r in runs):.0f} s in all.",
        markdown_table(SUMMARY_HEADER, summary, ["l", *["r"] * 10]),
    ]
    result: dict[str, Any] = {
        "command": runs[0]["command"],
        "run_seconds": [r["seconds"] for r in runs if r["arm"] == "this tree"],
        "verdicts": verdicts,
        "trials": rows,
    }
    headline = (
        f"**Headline ({label}): overhead outside training, median share of trial duration: "
        f"{headline_of(verdicts)}. Fixed cost (overhead + the first epoch's excess): "
        f"{fixed_of(verdicts)}"
    )
    if args.baseline:
        base_rows = [r for one in arms["baseline"] for r in one]
        base_summary, base_verdicts = summary_rows(base_rows)
        comparison = paired(arms["baseline"], arms["this tree"])
        result.update(baseline_verdicts=base_verdicts, baseline_trials=base_rows)
        result["paired"] = comparison
        sections += [
            f"Baseline `{args.baseline}`, the same command:",
            markdown_table(SUMMARY_HEADER, base_summary, ["l", *["r"] * 10]),
        ]
        if comparison["fixed_cost_ratio_median"] is not None:
            low, high = comparison["fixed_cost_ratio_range"]
            d_low, d_high = comparison["trial_seconds_ratio_range"]
            headline += (
                f"; at `{args.baseline}` {fixed_of(base_verdicts)}. Paired over "
                f"{comparison['trials_paired']} trials ({comparison['trials_unmatched']} ran "
                f"differently and are left out), this tree's over the baseline's: fixed cost "
                f"{comparison['fixed_cost_ratio_median']:.2f} (range {low:.2f}-{high:.2f}), "
                f"trial seconds {comparison['trial_seconds_ratio_median']:.2f} "
                f"({d_low:.2f}-{d_high:.2f}); the baseline's own ratio is 1.00 by construction"
            )
    sections += [headline + ".**", "Every trial of this tree:", per_trial_table(rows)]
    return sections, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="sampled trials (default 10)")
    parser.add_argument(
        "--sweep",
        default=DEFAULT_SWEEP,
        help=f"the sweep measured after the sampled study (default {DEFAULT_SWEEP}; "
        "'none' leaves it out)",
    )
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs per value")
    parser.add_argument("--preset", default="quick", choices=["smoke", "quick", "full"])
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the preset's)")
    parser.add_argument("--baseline", help="git revision to compare with, paired (e.g. main)")
    parser.add_argument("--pairs", type=int, default=2, help="runs per arm with --baseline")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    started = time.perf_counter()
    described = machine(tensorflow=False)
    studies: list[tuple[str, list[str] | None]] = [("a sampled study", None)]
    if args.sweep != "none":
        sweep = ["--sweep", args.sweep, "--repeats", str(args.repeats)]
        studies.append((f"a sweep, {args.sweep} x {args.repeats} repeats", sweep))
    sections: list[str] = []
    measured: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        code = {"this tree": REPO}
        if args.baseline:
            code["baseline"] = Path(tmp) / "baseline"
            git_worktree("add", "--detach", "-q", str(code["baseline"]), args.baseline)
        try:
            for label, sweep in studies:
                more, measured[label] = measure(label, args, code, Path(tmp), sweep)
                sections += more
        finally:
            if args.baseline:
                git_worktree("remove", "--force", str(code["baseline"]))
    first = measured[studies[0][0]]
    intro = [
        "# Per-trial overhead outside training (bench/bench_overhead.py)",
        f"Run {timestamp()} in {time.perf_counter() - started:.0f} s. Machine: {described}.",
        SHARED_NOTE.replace(
            "variants are interleaved and medians reported, and CPU-seconds "
            "(less sensitive to the load) are given beside them",
            "runs of the two arms alternate, trials are compared paired, and medians and "
            "ranges are reported",
        ),
        EXPLAINED,
    ]
    write_result(
        "overhead",
        "\n\n".join(intro + sections),
        {
            "machine": described,
            "baseline": args.baseline,
            "target_share": TARGET,
            # the sampled study's, at the top level as before; every study's under "studies"
            "command": first["command"],
            "verdicts": first["verdicts"],
            "studies": measured,
        },
    )


if __name__ == "__main__":
    main()
