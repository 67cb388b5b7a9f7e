"""When to stop a study: `run --until-converged`'s rule replayed on the recorded curves.

Each replay is one TPE study as bench_pruning.py replays it (same snapping, seeds and seconds),
pruned as the preset prunes by default, run for `--trials` trials. After every finished trial
the study-level rule of search/convergence.py (the function `run` calls) is asked whether the
seed-mean front of the completed trials has stopped moving beyond the seed noise for W finished
trials. Where it first says so, the study would have stopped.

Two numbers per window W, paired with the same replay run to the end:
- seconds saved: 1 - seconds at the stop / seconds of the whole study (0 if it never stopped);
- front missed: the true hypervolume (configurations' seed means, as in bench_pruning.py) the
  whole study found beyond what it had at the stop, as a share of the true front's
  hypervolume; and the share of replays in which the whole study completed a true-front
  configuration that the stopped one had not.

Held-out seeds and sampler seeds only (those bench_pruning.py reports on).

Usage: python bench/bench_convergence.py [--replays 48] [--trials 96] [--jobs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from typing import Any

import bench_pruning as bp
import numpy as np
from common import machine, markdown_table, timestamp, write_result
from pruning_rules import EnvelopeRule, NoiseRule, PruningRule, RungRule

from search import configurations as configs
from search.convergence import convergence, study_noise
from search.defaults import PRESETS

WINDOWS = (4, 8, 12, 16)
MAXIMIZE = (True, False)  # (ssim, mse)


def preset_rule(preset: str, rec: bp.Recording) -> PruningRule:
    """The preset's default pruning rule, as bench_pruning.py replays that kind of rule."""
    p, m = PRESETS[preset], rec.max_epochs
    if p.noise_margin:
        sd_ssim, sd_mse = rec.pooled_sd(range(len(rec.seeds) // 2))
        return NoiseRule(m, p.grace_epochs, p.eta, p.noise_margin, sd_ssim, sd_mse)
    if p.envelope_min_complete:
        return EnvelopeRule(m, p.grace_epochs, p.eta, p.envelope_min_complete)
    return RungRule(m, p.grace_epochs, p.eta)


def stops(trace: bp.Trace, rec: bp.Recording, epochs: int) -> dict[int, int | None]:
    """For each window W: the index of the finished trial after which the rule first said
    "converged" (None: never within the study)."""
    runs: list[configs.Run] = []
    found: dict[int, int | None] = dict.fromkeys(WINDOWS)
    for i, (config, values) in enumerate(trace.log):
        if values is not None:
            runs.append(configs.Run(i, rec.params[config], values))
        grouped = configs.group_runs(runs)
        noise, source = study_noise(grouped, epochs)
        result = convergence(
            runs, range(i + 1), max(WINDOWS), MAXIMIZE, noise, source, look_back=max(WINDOWS) + 1
        )
        for w in WINDOWS:
            if found[w] is None and result.stopped_at is not None and result.trials_since >= w:
                found[w] = i
        if all(v is not None for v in found.values()):
            break
    return found


def _replay(args: tuple[str, int, int, int]) -> dict[int, tuple[float, float, bool]]:
    """One replay: for each window (seconds saved, hypervolume missed, true front missed)."""
    preset, epochs, replay, trials = args
    rec, ctx = bp._REC, bp._CTX
    assert rec is not None and ctx is not None
    held_out = tuple(range(len(rec.seeds) // 2, len(rec.seeds)))
    task = bp.ReplayTask("tpe", replay, held_out, preset_rule(preset, rec), trials, None)
    trace = bp.run_replay(rec, task, ctx)
    best, total = ctx.best_hypervolume, trace.seconds[-1]
    out = {}
    for w, at in stops(trace, rec, epochs).items():
        if at is None:
            out[w] = (0.0, 0.0, False)
            continue
        completed_then = {c for c, v in trace.log[: at + 1] if v is not None}
        completed_all = {c for c, v in trace.log if v is not None}
        front_missed = any(ctx.on_true_front[c] for c in completed_all - completed_then)
        out[w] = (
            1.0 - trace.seconds[at] / total,
            (trace.hypervolume[-1] - trace.hypervolume[at]) / best,
            front_missed,
        )
    return out


def horizon(preset: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = next(s for s in bp.HORIZONS if s.preset == preset)
    rec = bp.load_recording(spec.epochs, spec.curves)
    first = args.first_replay
    tasks = [(preset, rec.max_epochs, r, args.trials) for r in range(first, first + args.replays)]
    with mp.get_context("fork").Pool(
        args.jobs, bp._init_worker, (spec.epochs, spec.curves)
    ) as pool:
        results = pool.map(_replay, tasks)
    rows = {}
    for w in WINDOWS:
        saved = [r[w][0] for r in results]
        missed = [r[w][1] for r in results]
        rows[str(w)] = {
            "replays": len(results),
            "stopped_share": float(np.mean([s > 0 for s in saved])),
            "seconds_saved_median": float(np.median(saved)),
            "seconds_saved_ci95": bp.median_ci95(saved),
            "hypervolume_missed_median": float(np.median(missed)),
            "hypervolume_missed_q90": float(np.quantile(missed, 0.9)),
            "true_front_missed_rate": float(np.mean([r[w][2] for r in results])),
        }
    return {
        "preset": preset,
        "max_epochs": rec.max_epochs,
        "rule": preset_rule(preset, rec).name,
        "curves": str(spec.curves.relative_to(bp.REPO)),
        "windows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replays", type=int, default=48, help="held-out replays per preset")
    parser.add_argument("--trials", type=int, default=96, help="trials of the whole study")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument(
        "--first-replay",
        type=int,
        default=1000,
        help="sampler seed of the first replay (apart from bench_pruning.py's, 0 to ~200)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    found = [horizon(preset, args) for preset in ("full", "quick")]
    elapsed = time.perf_counter() - started
    data = {
        "written": timestamp(),
        "machine": machine(tensorflow=False),
        "command": "python bench/bench_convergence.py " + " ".join(sys.argv[1:]),
        "trials_per_study": args.trials,
        "horizons": {str(h["max_epochs"]): h for h in found},
        "replay_seconds": elapsed,
    }
    lines = [
        "# When to stop: the convergence rule replayed",
        "",
        f"Written {data['written']} by `{data['command']}` in {elapsed:.0f} s; {data['machine']}.",
        "",
        f"Each replay: one TPE study of {args.trials} trials on the held-out seeds, pruned by "
        "the preset's default; the rule of `run --until-converged` asked after every finished "
        "trial. *Saved*: share of the study's seconds after the stop (0 where it never "
        "stopped). *HV missed*: true hypervolume the whole study found after the stop, as a "
        "share of the true front's. *Front missed*: share of replays in which a true-front "
        "configuration was first completed after the stop.",
        "",
    ]
    for h in found:
        table = [
            [
                w,
                v["replays"],
                f"{v['stopped_share']:.0%}",
                f"{v['seconds_saved_median']:.0%} ("
                + " – ".join(f"{x:.0%}" for x in v["seconds_saved_ci95"])
                + ")",
                f"{v['hypervolume_missed_median']:.3f} / {v['hypervolume_missed_q90']:.3f}",
                f"{v['true_front_missed_rate']:.0%}",
            ]
            for w, v in h["windows"].items()
        ]
        default = h["windows"][str(bp_default_window())]
        lines += [
            f"## {h['max_epochs']} epochs (`--preset {h['preset']}`, pruning {h['rule']})",
            "",
            markdown_table(
                [
                    "window W",
                    "replays",
                    "stopped",
                    "saved, median (95% CI)",
                    "HV missed, median / 90th pct",
                    "front missed",
                ],
                table,
                ["r", "r", "r", "r", "r", "r"],
            ),
            "",
            f"**Default window {bp_default_window()}:** stops {default['stopped_share']:.0%} "
            f"of the studies, saving a median {default['seconds_saved_median']:.0%} of the "
            f"seconds; a true-front configuration found only after the stop in "
            f"{default['true_front_missed_rate']:.0%} of the replays, median hypervolume "
            f"missed {default['hypervolume_missed_median']:.3f} of the true front's.",
            "",
        ]
    write_result("convergence", "\n".join(lines), data)


def bp_default_window() -> int:
    from search.defaults import CONVERGENCE_WINDOW

    return CONVERGENCE_WINDOW if CONVERGENCE_WINDOW in WINDOWS else WINDOWS[1]


if __name__ == "__main__":
    sys.exit(main())
