"""Ideas to make pruning pay (issue 17, item 4), replayed as bench_pruning.py replays rules.

Same recorded curves, same paired replay and measures as bench/bench_pruning.py (read its
docstring): each rule is tuned on the first half of the seeds, the fastest rule of each family
that lost no true-front configuration there is replayed on the held-out seeds with new
sampler seeds, beside the current default (bench/results/pruning.json) and no pruning.

Families:
- learning-curve extrapolation (`pruning_rules.ExtrapolationRule`): fit the running trial's
  curve so far in both objectives, stop it only if the optimistic end of its predicted final
  values (seed-to-seed SD measured on the tuning seeds as the observation model) is dominated
  by a completed trial's final values;
- the same with measured intervals (`pruning_rules.CalibratedExtrapolationRule`): the best
  fit's forecast plus a quantile of the forecast errors the fit made on the tuning seeds'
  curves at that epoch;
- freeze-thaw (`pruning_rules.PauseRule`): a stopped trial is paused and resumed, its own
  curve continued and its remaining epochs charged then, once its rung turns out weaker than
  it looked (the rule would keep it with every result the rung has now);
- ceilings, not rules (they read the truth): an oracle that stops, at one epoch, every trial
  whose true (seed-mean) final values are dominated by the true values of a trial already
  completed: what a perfect extrapolation could give at best; and one that stops every trial
  not of the true front.

Usage: python bench/bench_pruning_ideas.py [--replays 96] [--tuning-replays 16] [--only 30]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from typing import Any

import bench_pruning as bp
import numpy as np
from common import REPO, machine, markdown_table, timestamp, write_result
from pruning_rules import (
    CalibratedExtrapolationRule,
    EnvelopeRule,
    ExtrapolationRule,
    NoiseRule,
    NoPruning,
    PauseRule,
    Point,
    PruningRule,
    RungRule,
    forecast_margins,
)


class Oracle(PruningRule):
    """Not a rule (it reads the truth): at `epoch`, stop a trial whose configuration's true
    final values are dominated by a completed trial's true values (`dominated`), or that is
    not of the true front (`front`)."""

    def __init__(self, epoch: int, kind: str) -> None:
        self.epoch, self.kind = epoch, kind
        self.name = (
            f"ceiling: stop at epoch {epoch} what a perfect forecast shows dominated"
            if kind == "dominated"
            else f"ceiling: stop at epoch {epoch} all but the true front"
        )
        self.finals: list[np.ndarray] = []

    def settings(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "kind": self.kind}

    def describe(self) -> dict[str, Any]:
        return {"rule": self.name, "oracle": True, **self.settings()}

    @staticmethod
    def _config(epoch: int, point: Point) -> int:
        rec = bp._REC
        assert rec is not None
        hit = np.isclose(rec.ssim[:, :, epoch - 1], point[0]) & np.isclose(
            rec.mse[:, :, epoch - 1], point[1]
        )
        return int(np.argwhere(hit)[0][0])

    def completed(self, trial: int, values: Point) -> None:
        assert bp._CTX is not None and bp._REC is not None
        self.finals.append(bp._CTX.truth[self._config(bp._REC.max_epochs, values)])

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        if epoch != self.epoch:
            return False
        ctx = bp._CTX
        assert ctx is not None
        config = self._config(epoch, point)
        if self.kind == "front":
            return not bool(ctx.on_true_front[config])
        s, m = ctx.truth[config]
        return any(f[0] > s and f[1] < m for f in self.finals)


def candidates(rec: bp.Recording) -> dict[str, list[PruningRule]]:
    m = rec.max_epochs
    sd_s, sd_m = rec.pooled_sd(list(range(len(rec.seeds) // 2)))
    steps = ((4, 2), (6, 3), (8, 4)) if m >= 24 else ((4, 1), (4, 2), (6, 2))
    extrapolation: list[PruningRule] = [
        ExtrapolationRule(m, first, every, z, 3, sd_s, sd_m)
        for first, every in steps
        for z in (0.5, 1.0, 2.0)
    ]
    tuning = list(range(len(rec.seeds) // 2))
    curves_s = rec.ssim[:, tuning, :].reshape(-1, m)  # the tuning seeds' curves only
    curves_m = rec.mse[:, tuning, :].reshape(-1, m)
    for first, every in steps:
        for q in (0.9, 0.95):
            margins = forecast_margins(curves_s, curves_m, range(first, m, every), sd_s, sd_m, q)
            extrapolation.append(
                CalibratedExtrapolationRule(m, first, every, q, 3, sd_s, sd_m, *margins)
            )
    inner: list[RungRule] = [
        RungRule(m, 1, 2),
        RungRule(m, 2, 2 if m >= 24 else 3),
        NoiseRule(m, 1, 2, 2.0, sd_s, sd_m),
        NoiseRule(m, 2, 2 if m >= 24 else 3, 1.0, sd_s, sd_m),
    ]
    return {"extrapolation": extrapolation, "pause-resume": [PauseRule(r) for r in inner]}


def current_default(rec: bp.Recording) -> PruningRule:
    """The default bench_pruning.py chose for this horizon (bench/results/pruning.json)."""
    data = json.loads((REPO / "bench" / "results" / "pruning.json").read_text())
    d = data["horizons"][str(rec.max_epochs)]["default"]
    m, kind = rec.max_epochs, d["rule"].split()[0]
    sd_s, sd_m = rec.pooled_sd(list(range(len(rec.seeds) // 2)))
    if kind == "envelope":
        return EnvelopeRule(m, d["grace"], d["eta"], d["min_complete"])
    if kind == "noise":
        return NoiseRule(m, d["grace"], d["eta"], d["margin_sd"], sd_s, sd_m)
    return RungRule(m, d["grace"], d["eta"])


def horizon(spec: bp.HorizonSpec, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    rec = bp.load_recording(spec.epochs, spec.curves)
    ctx = bp.make_context(rec)
    half = len(rec.seeds) // 2
    tuning, held_out = tuple(range(half)), tuple(range(half, len(rec.seeds)))
    families = candidates(rec)
    best = ctx.best_hypervolume
    tuned_summary: dict[str, dict[str, Any]] = {}
    with mp.get_context("fork").Pool(
        args.jobs, bp._init_worker, (spec.epochs, spec.curves)
    ) as pool:
        every = [r for rules in families.values() for r in rules]
        tuned = bp.evaluate(pool, every, range(args.tuning_replays), tuning, args.trials, best)
        finalists: dict[str, tuple[str, PruningRule]] = {}
        for family, rules in families.items():
            summaries = {r.name: bp.summarise(tuned[r.name]) for r in rules}
            tuned_summary |= summaries
            clean = [r for r in rules if summaries[r.name]["true_front_loss_rate"] == 0.0]
            if clean:
                pick = min(clean, key=lambda r: summaries[r.name]["paired_seconds_ratio_median"])
                finalists[pick.name] = (family, pick)
        default = current_default(rec)
        finalists[default.name] = ("current default", default)
        finalists["none"] = ("no pruning", NoPruning())
        for epoch in (2, 4, 6):
            oracle = Oracle(epoch, "dominated")
            finalists[oracle.name] = ("ceiling", oracle)
        front = Oracle(2, "front")
        finalists[front.name] = ("ceiling", front)
        replays = range(args.tuning_replays, args.tuning_replays + args.replays)
        rules = [r for _, r in finalists.values()]
        held = bp.evaluate(pool, rules, replays, held_out, args.trials, best)
    goal = bp.RATIO_GOALS.get(rec.max_epochs)
    out: dict[str, Any] = {}
    for name, (family, rule) in finalists.items():
        s = bp.summarise(held[name])
        out[name] = {
            **rule.describe(),
            "family": family,
            **s,
            "meets_goals": bp.meets(s, rec.max_epochs, held_out=True),
            "paired_median_over_goal": s["paired_seconds_ratio_median"] - goal if goal else None,
            "tuning": tuned_summary.get(name),
        }
    return {
        "max_epochs": rec.max_epochs,
        "curves": str(spec.curves.relative_to(REPO)),
        "tuning_seeds": rec.seeds[:half],
        "held_out_seeds": rec.seeds[half:],
        "goal_paired_median": goal,
        "candidates_tuned": {k: summarise_brief(v) for k, v in tuned_summary.items()},
        "rules": out,
        "replay_seconds": time.perf_counter() - started,
    }


def summarise_brief(s: dict[str, Any]) -> dict[str, Any]:
    return {
        k: s[k]
        for k in ("replays", "true_front_loss_rate", "paired_seconds_ratio_median")
        if k in s
    }


def verdict(h: dict[str, Any]) -> str:
    """The horizon's conclusion: the fastest rule within the loss goals, against the goal and
    the current default, and the ceilings."""
    rules = h["rules"]
    goal, m = h["goal_paired_median"], h["max_epochs"]
    safe = [
        (n, v)
        for n, v in rules.items()
        if v["family"] in ("extrapolation", "pause-resume", "current default")
        and v["true_front_loss_rate"] <= bp.LOSS_GOAL
        and v["true_front_loss_rate_upper_95"] <= bp.LOSS_UPPER_GOAL
    ]
    default = next(v for v in rules.values() if v["family"] == "current default")
    ceilings = [(n, v) for n, v in rules.items() if v["family"] == "ceiling"]
    text = f"**{m} epochs: "
    if safe:
        name, v = min(safe, key=lambda nv: nv[1]["paired_seconds_ratio_median"])
        met = v["paired_seconds_ratio_median"] <= goal
        text += (
            f"{'goal met' if met else 'goal not met'}.** The fastest rule within both loss "
            f"goals is {name} ({v['family']}): paired median "
            f"{bp.fmt_ratio(v['paired_seconds_ratio_median'])}, "
            f"{v['paired_seconds_ratio_median'] - goal:+.0%} against the goal, loss "
            f"{v['true_front_loss_rate']:.1%} (≤ {v['true_front_loss_rate_upper_95']:.1%})"
        )
    else:
        text += "goal not met.** No rule kept both loss goals"
    text += (
        f"; the current default in the same replays: "
        f"{bp.fmt_ratio(default['paired_seconds_ratio_median'])}, loss "
        f"{default['true_front_loss_rate']:.1%} (≤ {default['true_front_loss_rate_upper_95']:.1%})"
        ". Ceilings (they read the truth): "
        + "; ".join(f"{n}: {bp.fmt_ratio(v['paired_seconds_ratio_median'])}" for n, v in ceilings)
        + "."
    )
    return text


def report(data: dict[str, Any]) -> str:
    lines = [
        "# Ideas to make pruning pay, replayed (issue 17, item 4)",
        "",
        f"Written {data['written']} by `{data['command']}` in {data['replay_seconds']:.0f} s; "
        f"{data['machine']}.",
        "",
        "Paired replays of recorded curves as in [pruning.md](pruning.md) (TPE, as `run` "
        "builds it: multivariate, constant liar). Each family's fastest rule that lost no "
        f"true-front configuration in {data['tuning_replays']} replays on the tuning seeds, "
        "then every row on the held-out seeds. *Ceiling* rows read the truth: they are bounds, "
        "not rules.",
        "",
    ]
    for h in data["horizons"].values():
        goal = h["goal_paired_median"]
        header = [
            "rule",
            "family",
            "replays",
            "true-front loss (95% upper)",
            "paired seconds, median (95% CI)",
            "vs goal",
            "pruned",
            "tuning: loss / paired",
        ]
        rows = []
        ordered = sorted(h["rules"].items(), key=lambda kv: kv[1]["paired_seconds_ratio_median"])
        for name, v in ordered:
            t = v["tuning"]
            rows.append(
                [
                    name,
                    v["family"],
                    v["replays"],
                    f"{v['true_front_loss_rate']:.1%} (≤ {v['true_front_loss_rate_upper_95']:.1%})",
                    f"{bp.fmt_ratio(v['paired_seconds_ratio_median'])} ("
                    + " – ".join(bp.fmt_ratio(x) for x in v["paired_seconds_ratio_ci95"])
                    + ")",
                    (
                        f"{v['paired_median_over_goal']:+.0%}"
                        if goal and math.isfinite(v["paired_median_over_goal"])
                        else ""
                    ),
                    f"{v['pruned_share_mean']:.0%}",
                    f"{t['true_front_loss_rate']:.0%} / "
                    f"{bp.fmt_ratio(t['paired_seconds_ratio_median'])}"
                    if t
                    else "",
                ]
            )
        lines += [
            f"## {h['max_epochs']} epochs per trial (goal: paired median ≤ {goal:.0%}, "
            "loss ≤ 5%, its 95% upper bound ≤ 6.5%)",
            "",
            f"Curves `{h['curves']}`; tuning seeds {h['tuning_seeds']}, held-out seeds "
            f"{h['held_out_seeds']}; replayed in {h['replay_seconds']:.0f} s.",
            "",
            markdown_table(header, rows, ["l", "l"] + ["r"] * 6),
            "",
            "Candidates on the tuning seeds (loss / paired median):",
            "",
            markdown_table(
                ["candidate", "replays", "loss", "paired median"],
                [
                    [
                        n,
                        c["replays"],
                        f"{c['true_front_loss_rate']:.0%}",
                        bp.fmt_ratio(c["paired_seconds_ratio_median"]),
                    ]
                    for n, c in h["candidates_tuned"].items()
                ],
                ["l", "r", "r", "r"],
            ),
            "",
            verdict(h),
            "",
        ]
    lines += [
        "Not replayable here: *cheaper first rungs* (fewer images per epoch): the curves hold "
        "one value per full epoch, so a rung on part of an epoch has no recorded value. *The "
        "sampler side*: the replay already uses `run`'s TPE (multivariate, constant liar; "
        "single-worker, so the liar is moot); GPSampler needs PyTorch, which the project does "
        "not install, so it was not replayed.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replays", type=int, default=96, help="held-out replays per row")
    parser.add_argument("--tuning-replays", type=int, default=16, help="per candidate")
    parser.add_argument("--trials", type=int, default=24, help="the unpruned study's trials")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="rewrite bench/results/pruning_ideas.md from its .json (no replay)",
    )
    parser.add_argument(
        "--only", type=int, action="append", metavar="EPOCHS", help="30 or 12; writes nothing"
    )
    args = parser.parse_args()
    if args.from_json:
        data = json.loads((REPO / "bench" / "results" / "pruning_ideas.json").read_text())
        write_result("pruning_ideas", report(data), data)
        return
    started = time.perf_counter()
    horizons = {}
    for spec in bp.HORIZONS[:2]:  # 30 and 12 epochs: the horizons with a seconds goal
        epochs = spec.epochs or bp.load_recording(None, spec.curves).max_epochs
        if args.only and epochs not in args.only:
            continue
        horizons[str(epochs)] = h = horizon(spec, args)
        for name, v in h["rules"].items():
            print(
                f"{epochs} epochs: {name}: loss {v['true_front_loss_rate']:.1%} "
                f"(≤ {v['true_front_loss_rate_upper_95']:.1%}), paired "
                f"{bp.fmt_ratio(v['paired_seconds_ratio_median'])}",
                flush=True,
            )
    data = {
        "written": timestamp(),
        "machine": machine(tensorflow=False),
        "command": " ".join(["python bench/bench_pruning_ideas.py", *sys.argv[1:]]),
        "replays": args.replays,
        "tuning_replays": args.tuning_replays,
        "horizons": horizons,
        "replay_seconds": time.perf_counter() - started,
    }
    if args.only:
        return
    write_result("pruning_ideas", report(data), data)


if __name__ == "__main__":
    sys.exit(main())
