"""Search efficiency of pruning rules, replayed from recorded multi-seed learning curves.

Data: bench/data/curves.json.gz (bench/record_curves.py): configurations drawn from the run's
default search space, each trained for real under several seeds for `max_epochs` epochs at the
quick preset, with per-epoch validation SSIM, validation MSE and seconds.

One replay is one study, run by a real Optuna sampler (`search.run.setup.make_sampler`) over the
real default space, with no training: a suggested point is snapped to the nearest recorded
configuration (parameters scaled to [0, 1], latent_dim, filters, dense_units and beta on a log
scale), and the trial then walks that configuration's curve of one seed, epoch by epoch, paying
the recorded seconds (the first epoch carries the step's first trace; every trial also pays
its recorded set-up and final scoring, pruned or not). A pruning rule sees each epoch's values
and may stop the trial (told to Optuna as PRUNED, as `run` does). Which seed a configuration
shows is drawn per replay; a configuration suggested again shows its next seed (a new trial
trains under a new seed). The seeds are split in two: rules are tuned on the first half
("tuning seeds") and every reported number comes from the other half ("held-out seeds").

Truth: the seed-mean validation (SSIM, MSE) of each configuration at the last epoch over all
seeds; the true front is their Pareto front. Hypervolume is always computed on the true
(seed-mean) values of the configurations a study completed, so a lucky draw does not count as
a find, against a reference point taken from the data: the worst seed-mean SSIM and MSE, each
moved outwards by 10% of its range.

The headline is paired. Each replay is a pair of studies with the same sampler seed and seed
draws: the unpruned one runs `--trials` trials; the pruned one runs on (more trials in the same
time: that is what pruning buys) until it has spent the unpruned study's seconds.
- paired seconds ratio: seconds until the pruned study's hypervolume reaches the unpruned
  study's final one, divided by the seconds the unpruned study itself took to reach it. No
  pruning scores exactly 1.0; a rule that never gets there within the unpruned seconds scores
  infinity. (An older headline divided by the unpruned study's total seconds instead, and
  gave no pruning 33%: an unpruned TPE study often finds its final front early.)
- true-front loss rate: the share of replays in which a true-front configuration was sampled
  and then stopped early, with its one-sided 95% Clopper-Pearson upper bound;
- anytime: hypervolume regret (1 - found / the true front's) at 25, 50 and 100% of the
  unpruned seconds, and seconds until a true-front configuration was first completed.
Medians carry bootstrap 95% intervals. Goals: loss <= 5% with its upper bound <= 6.5%, paired
median <= 50% at 30 epochs and <= 65% at 12.

Rules are tuned on the first half of the seeds ("tuning seeds"); the default, each family's
best, no pruning and OptunaHub's multi_metric_pruner (`--hub-registry`) are then replayed on
the other half with new sampler seeds, and every reported number comes from those.

Usage: python bench/bench_pruning.py [--hub-registry PATH] [--replays 96] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from common import REPO, machine, markdown_table, timestamp, write_result
from optuna.trial import TrialState
from pruning_rules import (
    HUB_BASES,
    HUB_PACKAGE,
    EnvelopeRule,
    HubRule,
    HyperbandRule,
    NoiseRule,
    NoPruning,
    PruningRule,
    RungRule,
)

from search.pareto import hypervolume_2d, non_dominated_sort
from search.run.setup import make_sampler
from search.space import default_space

CURVES = REPO / "bench" / "data" / "curves.json.gz"  # 12 epochs, 48 configurations x 4 seeds
CURVES_30 = REPO / "bench" / "data" / "curves30.json.gz"  # 30 epochs, 32 x 4
SAMPLERS = ("tpe", "nsga2", "random")
LOSS_GOAL, RATIO_GOAL, RATIO_STRETCH = 0.05, 0.40, 0.33
MAX_TRIALS_FACTOR = 12  # a pruned study stops after this many times --trials, whatever happens


# ---------------------------------------------------------------------------- the recording


@dataclasses.dataclass
class Recording:
    params: list[dict[str, Any]]
    seeds: list[int]
    ssim: np.ndarray  # [config, seed, epoch]; NaN after a failure
    mse: np.ndarray
    seconds: np.ndarray  # [config, seed, epoch]
    fixed: np.ndarray  # [config, seed]: set-up and final scoring
    raw: dict[str, Any]

    @property
    def max_epochs(self) -> int:
        return int(self.ssim.shape[2])

    def truth(self) -> tuple[np.ndarray, np.ndarray]:
        """Seed-mean (SSIM, MSE) per configuration at the last epoch; NaN if any seed failed."""
        return self.ssim[:, :, -1].mean(axis=1), self.mse[:, :, -1].mean(axis=1)

    def pooled_sd(self, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Seed-to-seed SD per epoch, pooled over configurations, from the given seed columns."""
        sds = []
        for values in (self.ssim[:, seeds, :], self.mse[:, seeds, :]):
            ok = np.isfinite(values).all(axis=(1, 2))
            var = values[ok].var(axis=1, ddof=1).mean(axis=0)
            sds.append(np.sqrt(var))
        return sds[0], sds[1]


def load_recording(epochs: int | None = None, path: Path = CURVES) -> Recording:
    """The recorded curves, cut to their first `epochs` epochs if given.

    A cut curve is what a shorter training under the same seed would have given: nothing in
    training (batches, order, optimiser) depends on the number of epochs planned.
    """
    with gzip.open(path, "rt") as f:
        raw = json.load(f)
    params, seeds = raw["configs"], raw["seeds"]
    shape = (len(params), len(seeds), raw["scenario"]["epochs"])
    ssim, mse, seconds = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape)
    fixed = np.zeros(shape[:2])
    for run in raw["runs"]:
        c, s = run["config_id"], seeds.index(run["seed"])
        for point in run["curve"]:
            e = point["epoch"] - 1
            ssim[c, s, e], mse[c, s, e] = point["val_ssim"], point["val_mse"]
            seconds[c, s, e] = point["seconds"]
        fixed[c, s] = run.get("fixed_seconds", 0.0)
    if epochs is not None:
        ssim, mse, seconds = ssim[:, :, :epochs], mse[:, :, :epochs], seconds[:, :, :epochs]
    return Recording(params, seeds, ssim, mse, seconds, fixed, raw)


# ---------------------------------------------------------------------------- snapping

LOG_SCALED = {"latent_dim", "filters", "dense_units", "beta"}


def encode(params: dict[str, Any], space: dict[str, Any]) -> np.ndarray:
    """A point in [0, 1]^d: numbers scaled over their range (log where the space is wide)."""
    out = []
    for name, dist in space.items():
        value = params[name]
        if name == "loss":
            out.append(0.0 if value == "bce" else 1.0)
            continue
        choices = getattr(dist, "choices", None)
        low, high = (min(choices), max(choices)) if choices else (dist.low, dist.high)
        if name in LOG_SCALED:
            value, low, high = math.log(value), math.log(low), math.log(high)
        out.append((value - low) / (high - low))
    return np.array(out)


# ---------------------------------------------------------------------------- hypervolume


def hypervolume(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area between the (ssim, mse) points' front and the reference (min SSIM, max MSE): the
    product's one 2-D hypervolume (search.pareto, as the report uses), on (-ssim, mse)."""
    losses = np.column_stack([-points[:, 0], points[:, 1]]) if len(points) else np.zeros((0, 2))
    return hypervolume_2d(losses, np.array([-reference[0], reference[1]]))


# ---------------------------------------------------------------------------- one replay


@dataclasses.dataclass
class Trace:
    seconds: list[float]  # cumulative seconds after each trial
    hypervolume: list[float]  # true hypervolume after each trial
    front_lost: bool  # a true-front configuration was sampled and stopped early
    trials: int
    pruned: int
    first_front_seconds: float = math.inf  # when a true-front configuration first completed
    error: str | None = None  # the rule raised (a hub package's failure), with its message
    # per trial: (configuration, the seed's last-epoch (ssim, mse), or None if not completed)
    log: list[tuple[int, tuple[float, float] | None]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ReplayTask:
    sampler: str
    replay: int  # sampler seed and seed draw
    seed_columns: tuple[int, ...]
    rule: PruningRule
    trials: int
    seconds_budget: float | None  # None: stop after `trials` trials


def run_replay(rec: Recording, task: ReplayTask, ctx: ReplayContext) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = default_space()
    rule = task.rule.fresh()
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=make_sampler(task.sampler, task.replay),
        pruner=rule.study_pruner(),
    )
    rng = np.random.default_rng(10_000 + task.replay)
    # Each configuration's seeds in this replay's order: suggested again, it shows the next.
    seed_order = [rng.permutation(task.seed_columns) for _ in rec.params]
    shown = [0] * len(rec.params)
    done: list[int] = []  # completed configurations
    cumulative, trace_s, trace_hv = 0.0, [], []
    lost, pruned, n, first_front = False, 0, 0, math.inf
    log: list[tuple[int, tuple[float, float] | None]] = []
    # freeze-thaw (a rule with `pauses`): trial -> (params, distributions, config, seed, epoch)
    paused: dict[int, tuple[dict[str, Any], dict[str, Any], int, int, int]] = {}

    def walk(judge: Any, config: int, seed: int, start: int) -> tuple[TrialState, Any, int]:
        """Walk the seed's curve from epoch `start` + 1, paying its seconds: the trial's state,
        its final values if completed, the epoch it stopped at."""
        nonlocal cumulative
        for e in range(start, rec.max_epochs):
            cumulative += rec.seconds[config, seed, e]
            point = (float(rec.ssim[config, seed, e]), float(rec.mse[config, seed, e]))
            if not all(math.isfinite(v) for v in point):
                return TrialState.FAIL, None, e + 1
            if e + 1 == rec.max_epochs:
                return TrialState.COMPLETE, point, e + 1
            if judge(e + 1, point):
                return TrialState.PRUNED, None, e + 1
        raise AssertionError("unreachable")

    def finished(config: int) -> None:
        nonlocal first_front
        done.append(config)
        if ctx.on_true_front[config] and math.isinf(first_front):
            first_front = cumulative

    while True:
        if task.seconds_budget is None and n >= task.trials:
            break
        if task.seconds_budget is not None and (
            cumulative >= task.seconds_budget or n >= task.trials * MAX_TRIALS_FACTOR
        ):
            break
        resume = rule.resumable({t: p[4] for t, p in paused.items()}) if paused else []
        if resume:
            # thaw: reload the weights (the set-up again) and continue the trial's own curve
            number = resume[0]
            params, distributions, config, seed, epoch = paused.pop(number)
            cumulative += rec.fixed[config, seed]
            state, values, stopped = walk(rule.for_trial(None, number), config, seed, epoch)
            if state is TrialState.COMPLETE and values is not None:
                rule.completed(number, values)
                study.add_trial(
                    optuna.trial.create_trial(
                        params=params, distributions=distributions, values=list(values)
                    )
                )
                finished(config)
            elif state is TrialState.PRUNED:
                paused[number] = (params, distributions, config, seed, stopped)
            log.append((config, values if state is TrialState.COMPLETE else None))
            trace_s.append(cumulative)
            trace_hv.append(ctx.hypervolume_of(done))
            continue
        trial = study.ask(space)
        config = int(np.argmin(((ctx.encoded - encode(trial.params, space)) ** 2).sum(axis=1)))
        seed = int(seed_order[config][shown[config] % len(task.seed_columns)])
        shown[config] += 1
        cumulative += rec.fixed[config, seed]
        state, values, stopped = walk(rule.for_trial(trial, n), config, seed, 0)
        if state is TrialState.COMPLETE and values is not None:
            rule.completed(n, values)
            study.tell(trial, list(values))
            finished(config)
        else:
            study.tell(trial, state=state)
        log.append((config, values if state is TrialState.COMPLETE else None))
        if state is TrialState.PRUNED:
            if getattr(rule, "pauses", False):
                paused[n] = (dict(trial.params), dict(trial.distributions), config, seed, stopped)
            else:
                pruned += 1
                lost = lost or bool(ctx.on_true_front[config])
        n += 1
        trace_s.append(cumulative)
        trace_hv.append(ctx.hypervolume_of(done))
    # a paused trial never resumed was stopped for good
    pruned += len(paused)
    lost = lost or any(bool(ctx.on_true_front[p[2]]) for p in paused.values())
    return Trace(trace_s, trace_hv, lost, n, pruned, first_front, log=log)


@dataclasses.dataclass
class ReplayContext:
    encoded: np.ndarray
    on_true_front: np.ndarray
    truth: np.ndarray  # [config, 2]
    reference: tuple[float, float]

    def hypervolume_of(self, configs: Sequence[int]) -> float:
        return hypervolume(self.truth[sorted(set(configs))], self.reference)

    @property
    def best_hypervolume(self) -> float:
        """The true front's own hypervolume: what a study that completed every configuration
        would score (regret is measured against it)."""
        return self.hypervolume_of(np.flatnonzero(self.on_true_front).tolist())


def make_context(rec: Recording) -> ReplayContext:
    space = default_space()
    ssim, mse = rec.truth()
    truth = np.column_stack([ssim, mse])
    finite = np.isfinite(truth).all(axis=1)
    front = np.zeros(len(truth), dtype=bool)
    valid = np.flatnonzero(finite)
    first = non_dominated_sort(np.column_stack([-ssim[valid], mse[valid]]))[0]
    front[valid[first]] = True
    lo_s, hi_s = ssim[finite].min(), ssim[finite].max()
    lo_m, hi_m = mse[finite].min(), mse[finite].max()
    reference = (lo_s - 0.1 * (hi_s - lo_s), hi_m + 0.1 * (hi_m - lo_m))
    truth[~finite] = [-math.inf, math.inf]
    encoded = np.array([encode(p, space) for p in rec.params])
    return ReplayContext(encoded, front, truth, reference)


# ---------------------------------------------------------------------------- pairing

ANYTIME = (0.25, 0.5, 1.0)  # shares of the unpruned study's seconds where regret is read


@dataclasses.dataclass
class Outcome:
    """One replay: the pruned study against the same replay unpruned (same sampler seed, same
    seed draws). Seconds are shares of the unpruned study's; infinity: not within them."""

    ratio: float  # seconds to the unpruned final hypervolume, pruned / unpruned (1.0 unpruned)
    front_lost: bool
    pruned_share: float
    trials: int
    regret: tuple[float, ...]  # 1 - hypervolume / true front's, at each ANYTIME share
    baseline_regret: tuple[float, ...]
    first_front: float  # seconds until a true-front configuration first completed
    baseline_first_front: float
    error: str | None = None


def _seconds_to(trace: Trace, target: float) -> float:
    return next(
        (s for s, hv in zip(trace.seconds, trace.hypervolume, strict=True) if hv >= target),
        math.inf,
    )


def _regret(trace: Trace, seconds: float, best: float) -> float:
    found = max(
        (hv for s, hv in zip(trace.seconds, trace.hypervolume, strict=True) if s <= seconds),
        default=0.0,
    )
    return 1.0 - found / best


def paired_outcome(baseline: Trace, pruned: Trace, best_hypervolume: float = 1.0) -> Outcome:
    """The headline is paired: both studies' seconds to the same target (the unpruned study's
    final hypervolume), so the unpruned arm scores exactly 1.0 and a lucky replay (one whose
    unpruned study found its front early) does not pass for pruning that pays."""
    budget = baseline.seconds[-1]
    if pruned.error is not None:
        nan = (math.nan,) * len(ANYTIME)
        return Outcome(math.nan, False, 0.0, 0, nan, nan, math.nan, math.nan, pruned.error)
    target = baseline.hypervolume[-1]
    regret = tuple(_regret(pruned, f * budget, best_hypervolume) for f in ANYTIME)
    baseline_regret = tuple(_regret(baseline, f * budget, best_hypervolume) for f in ANYTIME)

    def first_front(trace: Trace) -> float:
        share = trace.first_front_seconds / budget
        return share if share <= 1.0 else math.inf

    return Outcome(
        ratio=_seconds_to(pruned, target) / _seconds_to(baseline, target),
        front_lost=pruned.front_lost,
        pruned_share=pruned.pruned / max(1, pruned.trials),
        trials=pruned.trials,
        regret=regret,
        baseline_regret=baseline_regret,
        first_front=first_front(pruned),
        baseline_first_front=first_front(baseline),
    )


_REC: Recording | None = None
_CTX: ReplayContext | None = None


def _init_worker(epochs: int | None, path: Path) -> None:
    global _REC, _CTX
    _REC = load_recording(epochs, path)
    _CTX = make_context(_REC)


def _run(task: ReplayTask) -> Trace:
    assert _REC is not None and _CTX is not None
    try:
        return run_replay(_REC, task, _CTX)
    except Exception as error:  # a hub package's failure is a result: the table says it
        return Trace([], [], False, 0, 0, error=f"{type(error).__name__}: {error}")


def evaluate(
    pool: Any,
    rules: Sequence[PruningRule],
    replays: Sequence[int],
    seed_columns: tuple[int, ...],
    trials: int,
    best_hypervolume: float,
    sampler: str = "tpe",
) -> dict[str, list[Outcome]]:
    """Every rule over the replays, each paired with the same replay unpruned."""
    base_tasks = [ReplayTask(sampler, r, seed_columns, NoPruning(), trials, None) for r in replays]
    baselines = dict(zip(replays, pool.map(_run, base_tasks), strict=True))
    tasks = [
        ReplayTask(sampler, r, seed_columns, rule, trials, baselines[r].seconds[-1])
        for rule in rules
        for r in replays
    ]
    traces = pool.map(_run, tasks, chunksize=2)
    results: dict[str, list[Outcome]] = {}
    for task, trace in zip(tasks, traces, strict=True):
        outcome = paired_outcome(baselines[task.replay], trace, best_hypervolume)
        results.setdefault(task.rule.name, []).append(outcome)
    return results


# ---------------------------------------------------------------------------- statistics


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile that treats infinity as a value ("never reached")."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    if low == high or ordered[low] == ordered[high]:
        return ordered[low]
    if math.isinf(ordered[high]):
        return math.inf
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def median_ci95(values: Sequence[float], resamples: int = 2000) -> list[float]:
    """Percentile-bootstrap 95% interval of the median over replays (fixed seed: the file is
    reproducible). Infinity ("never") is a value, so the bounds never interpolate across it."""
    a = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    medians = np.median(a[rng.integers(0, len(a), (resamples, len(a)))], axis=1)
    low = float(np.quantile(medians, 0.025, method="lower"))
    high = float(np.quantile(medians, 0.975, method="higher"))
    return [low, high]


def loss_upper_bound(outcomes: Sequence[Outcome], confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of the true-front loss rate.

    With 0 losses in n replays it is 1 - (1 - confidence)**(1/n): 32 clean replays only show
    the rate is below 9%, 96 below 3.1%.
    """
    from scipy.stats import beta

    n, k = len(outcomes), sum(o.front_lost for o in outcomes)
    return 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        return {"replays": len(outcomes), "failed_replays": len(failed), "error": failed[0]}
    ratios = [o.ratio for o in outcomes]
    shares = [f"{f:.0%}" for f in ANYTIME]

    def medians(pick: Any) -> dict[str, float]:
        return {k: float(np.median([pick(o)[i] for o in outcomes])) for i, k in enumerate(shares)}

    return {
        "replays": len(outcomes),
        "paired_seconds_ratio_median": quantile(ratios, 0.5),
        "paired_seconds_ratio_ci95": median_ci95(ratios),
        "paired_seconds_ratio_q25_q75": [quantile(ratios, 0.25), quantile(ratios, 0.75)],
        "true_front_loss_rate": sum(o.front_lost for o in outcomes) / len(outcomes),
        "true_front_loss_rate_upper_95": loss_upper_bound(outcomes),
        "hypervolume_regret_median": medians(lambda o: o.regret),
        "hypervolume_regret_unpruned_median": medians(lambda o: o.baseline_regret),
        "hypervolume_regret_paired_difference_median": medians(
            lambda o: [p - b for p, b in zip(o.regret, o.baseline_regret, strict=True)]
        ),
        "first_true_front_seconds_median": quantile([o.first_front for o in outcomes], 0.5),
        "first_true_front_seconds_ci95": median_ci95([o.first_front for o in outcomes]),
        "first_true_front_seconds_unpruned_median": quantile(
            [o.baseline_first_front for o in outcomes], 0.5
        ),
        "pruned_share_mean": float(np.mean([o.pruned_share for o in outcomes])),
        "trials_mean": float(np.mean([o.trials for o in outcomes])),
    }


# ---------------------------------------------------------------------------- rules and goals

LOSS_GOAL, LOSS_UPPER_GOAL = 0.05, 0.065
RATIO_GOALS = {30: 0.50, 12: 0.65}  # paired median, per horizon; others have no ratio goal


def candidate_rules(rec: Recording, tuning: Sequence[int]) -> list[PruningRule]:
    m = rec.max_epochs
    graces = [g for g in (1, 2, 3, 4, 6, 9) if g < m]
    rules: list[PruningRule] = []
    for grace in graces:
        for eta in (2, 3, 4):
            if grace * eta < m or eta == 3:
                rules.append(RungRule(m, grace, eta))
    for grace, eta in ((1, 3), (2, 2)):
        rules.append(HyperbandRule(m, grace, eta))
    sd_ssim, sd_mse = rec.pooled_sd(tuning)  # the spread is measured on tuning seeds only
    for grace in graces[:4]:
        for eta in (2, 3, 4):
            for margin in (0.5, 1.0, 2.0):
                rules.append(NoiseRule(m, grace, eta, margin, sd_ssim, sd_mse))
            for min_complete in (3, 6):
                rules.append(EnvelopeRule(m, grace, eta, min_complete))
    return rules


def meets(summary: dict[str, Any], max_epochs: int, *, held_out: bool) -> bool:
    """The goals: loss rate <= 5% and its 95% upper bound <= 6.5% (only the rate where
    `held_out` is False), and the horizon's paired median where it has one."""
    if "error" in summary or summary["true_front_loss_rate"] > LOSS_GOAL:
        return False
    if held_out and summary["true_front_loss_rate_upper_95"] > LOSS_UPPER_GOAL:
        return False
    goal = RATIO_GOALS.get(max_epochs)
    return goal is None or summary["paired_seconds_ratio_median"] <= goal


def choose(
    table: dict[str, list[Outcome]], rules: Sequence[PruningRule], max_epochs: int
) -> tuple[PruningRule, bool]:
    """Safety first: among rules whose tuning-seed losses keep the 95% upper bound within the
    held-out goal (6.5%; with 64 replays: no loss at all), the lowest paired median; if none,
    the lowest loss, then the lowest median. Why the bound and not the rate: with one or two
    true-front configurations a rule that lost the front once in 32 tuning replays lost it in
    a third of the held-out ones (a first try of this benchmark)."""
    scored = [(summarise(table[r.name]), r) for r in rules]
    scored = [(s, r) for s, r in scored if "error" not in s]
    safe = [(s, r) for s, r in scored if s["true_front_loss_rate_upper_95"] <= LOSS_UPPER_GOAL]
    if safe:
        best = min(safe, key=lambda sr: sr[0]["paired_seconds_ratio_median"])
    else:
        best = min(
            scored,
            key=lambda sr: (sr[0]["true_front_loss_rate"], sr[0]["paired_seconds_ratio_median"]),
        )
    return best[1], meets(best[0], max_epochs, held_out=True)


def fmt_ratio(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.0%}"


# ---------------------------------------------------------------------------- one horizon


@dataclasses.dataclass(frozen=True)
class HorizonSpec:
    curves: Path
    epochs: int | None  # cut the curves to this many epochs (None: as recorded)
    preset: str | None  # the `run` preset whose default this horizon decides


HORIZONS = (
    HorizonSpec(CURVES_30, None, "full"),
    HorizonSpec(CURVES, None, None),
    HorizonSpec(CURVES, 6, "quick"),
)


@dataclasses.dataclass
class Horizon:
    spec: HorizonSpec
    rec: Recording
    ctx: ReplayContext
    tuned: dict[str, list[Outcome]]
    held: dict[str, list[Outcome]]
    rules: dict[str, PruningRule]  # the finalists, by name
    default: PruningRule
    meets_on_tuning: bool
    seconds: float
    chosen_on: str  # "tuning seeds", or why the held-out seeds had to decide


def replay_horizon(spec: HorizonSpec, args: argparse.Namespace) -> Horizon:
    started = time.perf_counter()
    rec = load_recording(spec.epochs, spec.curves)
    ctx = make_context(rec)
    half = len(rec.seeds) // 2
    tuning, held_out = tuple(range(half)), tuple(range(half, len(rec.seeds)))
    rules = candidate_rules(rec, tuning)
    best = ctx.best_hypervolume
    with mp.get_context("fork").Pool(args.jobs, _init_worker, (spec.epochs, spec.curves)) as pool:
        tuned = evaluate(pool, rules, range(args.tuning_replays), tuning, args.trials, best)
        default, meets_on_tuning = choose(tuned, rules, rec.max_epochs)
        # Finalists: the default, each family's best on the tuning seeds, no pruning (the
        # baseline, 1.0 by construction) and the public hub rules, which have nothing to tune.
        finalists: dict[str, PruningRule] = {default.name: default, "none": NoPruning()}
        for family in sorted({type(r) for r in rules}, key=lambda f: f.__name__):
            members = [r for r in rules if type(r) is family]
            chosen, _ = choose(tuned, members, rec.max_epochs)
            finalists.setdefault(chosen.name, chosen)
            # and the family's most careful rule that was safe on the tuning seeds (the latest
            # first rung, then the gentlest cut): two seeds of a slow starter can look fast,
            # so the fastest safe rule may not be safe on others
            careful = [r for r in members if _safe(summarise(tuned[r.name]))]
            if careful:
                gentlest = max(careful, key=_carefulness)
                finalists.setdefault(gentlest.name, gentlest)
        # held out: other curves (seeds) and new sampler seeds
        replays = range(args.tuning_replays, args.tuning_replays + args.replays)
        held = evaluate(pool, list(finalists.values()), replays, held_out, args.trials, best)
        if args.hub_registry:
            hubs = [HubRule(base, args.hub_registry, rec.max_epochs) for base in HUB_BASES]
            hub_replays = replays[: args.hub_replays]  # the finalists' first replays, paired
            held |= evaluate(pool, hubs, hub_replays, held_out, args.trials, best)
            finalists |= {hub.name: hub for hub in hubs}
    seconds = time.perf_counter() - started
    chosen_on = "tuning seeds"
    if not _safe(summarise(held[default.name])):
        # The tuning choice lost the true front on the held-out seeds: `run` must not default
        # to it. The default is then the fastest finalist that is safe held out; its numbers
        # are no longer a clean held-out estimate, and the report says so.
        # Safe held out means the loss rate within 5% here: where no finalist also keeps the
        # upper bound within 6.5%, the goals say "not met", and the report says so.
        safe = [
            r
            for name, r in finalists.items()
            if not isinstance(r, HubRule | NoPruning)
            and "error" not in (held_summary := summarise(held[name]))
            and held_summary["true_front_loss_rate"] <= LOSS_GOAL
        ]
        if safe:
            lost = summarise(held[default.name])["true_front_loss_rate"]
            chosen_on = (
                f"held-out seeds: the tuning seeds' choice, {default.name}, lost the true "
                f"front in {lost:.1%} of the held-out replays"
            )
            default = min(
                safe, key=lambda r: summarise(held[r.name])["paired_seconds_ratio_median"]
            )
    return Horizon(
        spec, rec, ctx, tuned, held, finalists, default, meets_on_tuning, seconds, chosen_on
    )


def _carefulness(rule: PruningRule) -> tuple[float, ...]:
    settings = rule.settings()
    guard = settings.get("margin", 0.0) or settings.get("min_complete", 0)
    return (settings.get("grace", 0), -settings.get("eta", 0), guard)


def _safe(summary: dict[str, Any]) -> bool:
    return (
        "error" not in summary
        and summary["true_front_loss_rate"] <= LOSS_GOAL
        and summary["true_front_loss_rate_upper_95"] <= LOSS_UPPER_GOAL
    )


def rank_correlations(rec: Recording) -> dict[str, list[float]]:
    """Spearman correlation of each epoch's seed-mean values with the last epoch's, per metric:
    how well a rung at that epoch can know the final ranking."""
    from scipy.stats import spearmanr

    out: dict[str, list[float]] = {}
    for name, values in (("ssim", rec.ssim), ("mse", rec.mse)):
        means = values.mean(axis=1)  # [config, epoch]
        ok = np.isfinite(means).all(axis=1)
        out[name] = [
            float(spearmanr(means[ok, e], means[ok, -1])[0]) for e in range(rec.max_epochs)
        ]
    return out


def horizon_data(h: Horizon) -> dict[str, Any]:
    m = h.rec.max_epochs
    rules = {}
    for name, rule in h.rules.items():
        summary = summarise(h.held[name])
        rules[name] = {
            **rule.describe(),
            **summary,
            "meets_goals": meets(summary, m, held_out=True),
            "tuning": summarise(h.tuned[name]) if name in h.tuned else None,
        }
    half = len(h.rec.seeds) // 2
    sd_ssim, sd_mse = h.rec.pooled_sd(list(range(half)))  # what the noise rules were given
    d = rules[h.default.name]
    safe_hubs = [
        v
        for v in rules.values()
        if isinstance(h.rules.get(v["rule"]), HubRule)
        and "error" not in v
        and v["true_front_loss_rate"] <= LOSS_GOAL
    ]
    ahead = all(
        d["paired_seconds_ratio_median"] < v["paired_seconds_ratio_median"] for v in safe_hubs
    )
    return {
        "max_epochs": m,
        "preset": h.spec.preset,
        "curves": str(h.spec.curves.relative_to(REPO)),
        "curves_command": h.rec.raw["command"],
        "configs": len(h.rec.params),
        "seeds_per_config": len(h.rec.seeds),
        "tuning_seeds": h.rec.seeds[:half],
        "held_out_seeds": h.rec.seeds[half:],
        "reference_point": {"ssim": h.ctx.reference[0], "mse": h.ctx.reference[1]},
        "true_front": [int(i) for i in np.flatnonzero(h.ctx.on_true_front)],
        "true_front_hypervolume": h.ctx.best_hypervolume,
        "seed_sd_per_epoch_tuning_seeds": {"ssim": sd_ssim.tolist(), "mse": sd_mse.tolist()},
        "spearman_with_last_epoch": rank_correlations(h.rec),
        "candidate_rules": len(h.tuned),
        "goals": {
            "true_front_loss_rate": LOSS_GOAL,
            "true_front_loss_rate_upper_95": LOSS_UPPER_GOAL,
            "paired_seconds_ratio_median": RATIO_GOALS.get(m),
        },
        "default": {
            **d,
            "meets_goals_on_tuning_seeds": h.meets_on_tuning,
            "chosen_on": h.chosen_on,
        },
        "default_ahead_of_hub_rules_within_the_loss_goal": ahead if safe_hubs else None,
        "rules": rules,
        "replay_seconds": h.seconds,
    }


def _interval(ci: Sequence[float]) -> str:
    return " – ".join(fmt_ratio(x) for x in ci)


def horizon_report(h: Horizon, data: dict[str, Any]) -> list[str]:
    def row(name: str, v: dict[str, Any]) -> list[Any]:
        if "error" in v:
            return [name, v["replays"], f"fails: {v['error'][:70]}", "", "", "", "", "", ""]
        r, u = v["hypervolume_regret_median"], v["hypervolume_regret_unpruned_median"]
        return [
            name + (" **(default)**" if name == h.default.name else ""),
            v["replays"],
            f"{v['true_front_loss_rate']:.1%} (≤ {v['true_front_loss_rate_upper_95']:.1%})",
            f"{fmt_ratio(v['paired_seconds_ratio_median'])} "
            f"({_interval(v['paired_seconds_ratio_ci95'])})",
            " / ".join(f"{r[k]:.3f}" for k in r) + " vs " + " / ".join(f"{u[k]:.3f}" for k in u),
            f"{fmt_ratio(v['first_true_front_seconds_median'])} vs "
            f"{fmt_ratio(v['first_true_front_seconds_unpruned_median'])}",
            f"{v['pruned_share_mean']:.0%}",
            f"{v['tuning']['true_front_loss_rate']:.0%} / "
            f"{fmt_ratio(v['tuning']['paired_seconds_ratio_median'])}"
            if v["tuning"] and "error" not in v["tuning"]
            else "",
            "yes" if v["meets_goals"] else "no",
        ]

    ordered = sorted(
        data["rules"].items(),
        key=lambda kv: (
            "error" in kv[1],
            kv[1].get("paired_seconds_ratio_median", math.inf),
        ),
    )
    header = [
        "rule",
        "replays",
        "true-front loss (95% upper)",
        "paired seconds, median (95% CI)",
        "HV regret at 25/50/100% of unpruned seconds, vs unpruned",
        "first true-front config, vs unpruned",
        "pruned",
        "tuning seeds: loss / paired",
        "goals met",
    ]
    rho = data["spearman_with_last_epoch"]
    d = data["default"]
    goal = data["goals"]["paired_seconds_ratio_median"]
    goal_text = (
        f"paired median ≤ {goal:.0%}, loss ≤ 5%, its 95% upper bound ≤ 6.5%"
        if goal
        else "loss ≤ 5%, its 95% upper bound ≤ 6.5% (no seconds goal at this horizon)"
    )
    missed = ""
    if not d["meets_goals"] and "error" not in d and goal:
        missed = (
            f" Missed by {d['paired_seconds_ratio_median'] - goal:+.0%} on the median"
            if d["paired_seconds_ratio_median"] > goal
            else " The loss bound is missed"
        ) + "."
    preset = f" (`run --preset {h.spec.preset}`'s default)" if h.spec.preset else ""
    ahead = data["default_ahead_of_hub_rules_within_the_loss_goal"]
    hub_text = {
        None: " No hub rule kept the true-front loss within 5% (or none was replayed).",
        True: " Ahead of every hub rule whose loss is within 5%.",
        False: " Not ahead of every hub rule whose loss is within 5%.",
    }[ahead]
    return [
        f"## {data['max_epochs']} epochs per trial{preset}",
        "",
        f"Curves `{data['curves']}` ({data['configs']} configurations x "
        f"{data['seeds_per_config']} seeds"
        + (f", cut to {h.spec.epochs} epochs" if h.spec.epochs else "")
        + f"). {data['candidate_rules']} rules tuned with TPE on seeds {data['tuning_seeds']}; "
        f"the finalists below replayed on the held-out seeds {data['held_out_seeds']} with new "
        f"sampler seeds. True front (seed means at epoch {data['max_epochs']}): configurations "
        f"{data['true_front']}. Spearman correlation of each epoch's seed means with the last "
        "epoch's, SSIM: "
        + ", ".join(f"{x:.2f}" for x in rho["ssim"])
        + f". Replayed in {h.seconds:.0f} s.",
        "",
        markdown_table(header, [row(n, v) for n, v in ordered], ["l"] + ["r"] * 7 + ["l"]),
        "",
        f"**Default: {h.default.name}** (chosen on the {d['chosen_on']}). Held out, "
        f"{d['replays']} replays: paired seconds "
        f"median {fmt_ratio(d['paired_seconds_ratio_median'])} (95% CI "
        f"{_interval(d['paired_seconds_ratio_ci95'])}), true-front loss "
        f"{d['true_front_loss_rate']:.1%} (95% upper bound "
        f"{d['true_front_loss_rate_upper_95']:.1%}). Goals ({goal_text}): "
        + ("met." if d["meets_goals"] else "not met.")
        + missed
        + hub_text,
        "",
    ]


def _shown_arguments(args: argparse.Namespace) -> list[str]:
    """The command line as recorded: the registry checkout is named by what it is, not by
    where it lay on the machine that ran this."""
    shown = sys.argv[1:]
    if args.hub_registry:
        shown = [REGISTRY_NAME if a == args.hub_registry else a for a in shown]
    return shown


REGISTRY_NAME = "<checkout of optuna/optunahub-registry>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", action="store_true", help="replay (the only mode)")
    parser.add_argument(
        "--replays", type=int, default=96, help="held-out replays per finalist rule"
    )
    parser.add_argument(
        "--tuning-replays", type=int, default=64, help="replays per rule on the tuning seeds"
    )
    parser.add_argument(
        "--hub-replays",
        type=int,
        default=24,
        help="held-out replays per hub rule (its pruner rebuilds a study of every finished "
        "trial at each report: about 40 s per replay of a 30-epoch horizon here)",
    )
    parser.add_argument("--trials", type=int, default=24, help="the unpruned study's trials")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument(
        "--hub-registry",
        metavar="PATH",
        default=os.environ.get("OPTUNAHUB_REGISTRY") or None,
        help="a local checkout of optuna/optunahub-registry (default: $OPTUNAHUB_REGISTRY): "
        "also replay OptunaHub's "
        f"{HUB_PACKAGE} with the {', '.join(HUB_BASES)} base pruners (without it they "
        "are left out: optunahub would fetch them from GitHub)",
    )
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        metavar="EPOCHS",
        help="replay only this horizon (30, 12 or 6; repeatable); writes nothing",
    )
    args = parser.parse_args()
    if args.hub_registry and not (Path(args.hub_registry) / "package" / HUB_PACKAGE).is_dir():
        parser.error(f"--hub-registry {args.hub_registry}: no package/{HUB_PACKAGE} there")
    started = time.perf_counter()
    horizons = []
    for spec in HORIZONS:
        epochs = spec.epochs or load_recording(None, spec.curves).max_epochs
        if args.only and epochs not in args.only:
            continue
        h = replay_horizon(spec, args)
        horizons.append(h)
        d = horizon_data(h)["default"]
        print(
            f"{epochs} epochs: default {h.default.name}, paired median "
            f"{fmt_ratio(d.get('paired_seconds_ratio_median', math.nan))}, loss "
            f"{d.get('true_front_loss_rate', math.nan):.1%} ({h.seconds:.0f} s)",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    data: dict[str, Any] = {
        "written": timestamp(),
        "machine": machine(tensorflow=False),
        "command": "python bench/bench_pruning.py " + " ".join(_shown_arguments(args)),
        "trials_per_unpruned_study": args.trials,
        "replays": args.replays,
        "tuning_replays": args.tuning_replays,
        "hub_registry": bool(args.hub_registry),
        "horizons": {str(h.rec.max_epochs): horizon_data(h) for h in horizons},
        "replay_seconds": elapsed,
    }
    if args.only:
        return
    lines = [
        "# Pruning rules replayed from recorded curves",
        "",
        f"Written {data['written']} by `{data['command']}` in {elapsed:.0f} s; {data['machine']}.",
        "",
        "Each replay is a pair of TPE studies with the same sampler seed and seed draws: the "
        f"unpruned one runs {args.trials} trials; the pruned one runs until it has spent the "
        "same seconds. **Paired seconds**: seconds until the pruned study's true hypervolume "
        "reaches the unpruned study's final one, over the seconds the unpruned study itself "
        "took to get there (no pruning: exactly 100%; never: not within the unpruned seconds). "
        "**True-front loss**: share of replays in which a true-front configuration was sampled "
        "and stopped early, with its one-sided 95% Clopper-Pearson upper bound. **HV regret**: "
        "1 - true hypervolume found / the true front's, at 25, 50 and 100% of the unpruned "
        "seconds, medians. **First true-front config**: seconds until one completed, as a "
        "share of the unpruned seconds, medians. Intervals: bootstrap 95% of the median.",
        "",
    ]
    for h in horizons:
        lines += horizon_report(h, data["horizons"][str(h.rec.max_epochs)])
    write_result("pruning", "\n".join(lines), data)


if __name__ == "__main__":
    sys.exit(main())
