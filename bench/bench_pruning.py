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

Two numbers decide, per rule and sampler, paired with the same sampler and seeds unpruned:
- true-front loss rate: the share of replays in which a true-front configuration was sampled
  and then stopped early (at any point of the run);
- seconds ratio: seconds until the pruned study's hypervolume reaches the final hypervolume of
  the unpruned study at `--trials` trials, divided by the unpruned study's seconds. The pruned
  study runs on (more trials in the same time: that is what pruning buys) until it has spent
  the unpruned study's seconds; one that never gets there scores infinity.
Goals: loss <= 5% and median ratio <= 40% (stretch 33%).

Usage: python bench/bench_pruning.py --replay [--replays 24] [--trials 24] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from common import REPO, machine, markdown_table, timestamp, write_result
from optuna.trial import TrialState
from pruning_rules import (
    EnvelopeRule,
    HyperbandRule,
    NoiseRule,
    NoPruning,
    PruningRule,
    RungRule,
)

from search.pareto import hypervolume_2d, non_dominated_sort
from search.run.setup import make_sampler
from search.space import default_space

CURVES = REPO / "bench" / "data" / "curves.json.gz"
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


def load_recording(epochs: int | None = None) -> Recording:
    """The recorded curves, cut to their first `epochs` epochs if given.

    A cut curve is what a shorter training under the same seed would have given: nothing in
    training (batches, order, optimiser) depends on the number of epochs planned.
    """
    with gzip.open(CURVES, "rt") as f:
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
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(task.sampler, task.replay)
    )
    rng = np.random.default_rng(10_000 + task.replay)
    # Each configuration's seeds in this replay's order: suggested again, it shows the next.
    seed_order = [rng.permutation(task.seed_columns) for _ in rec.params]
    shown = [0] * len(rec.params)
    rule = task.rule.fresh()
    done: list[int] = []  # completed configurations
    cumulative, trace_s, trace_hv = 0.0, [], []
    lost, pruned, n = False, 0, 0
    while True:
        if task.seconds_budget is None and n >= task.trials:
            break
        if task.seconds_budget is not None and (
            cumulative >= task.seconds_budget or n >= task.trials * MAX_TRIALS_FACTOR
        ):
            break
        trial = study.ask(space)
        config = int(np.argmin(((ctx.encoded - encode(trial.params, space)) ** 2).sum(axis=1)))
        seed = int(seed_order[config][shown[config] % len(task.seed_columns)])
        shown[config] += 1
        cumulative += rec.fixed[config, seed]
        state, values = TrialState.COMPLETE, None
        for e in range(rec.max_epochs):
            cumulative += rec.seconds[config, seed, e]
            point = (float(rec.ssim[config, seed, e]), float(rec.mse[config, seed, e]))
            if not all(math.isfinite(v) for v in point):
                state = TrialState.FAIL
                break
            if e + 1 == rec.max_epochs:
                values = point
            elif rule.stop(n, e + 1, point):
                state = TrialState.PRUNED
                break
        if state is TrialState.COMPLETE and values is not None:
            rule.completed(n, values)
            study.tell(trial, list(values))
            done.append(config)
        else:
            study.tell(trial, state=state)
        if state is TrialState.PRUNED:
            pruned += 1
            lost = lost or bool(ctx.on_true_front[config])
        n += 1
        trace_s.append(cumulative)
        trace_hv.append(ctx.hypervolume_of(done))
    return Trace(trace_s, trace_hv, lost, n, pruned)


@dataclasses.dataclass
class ReplayContext:
    encoded: np.ndarray
    on_true_front: np.ndarray
    truth: np.ndarray  # [config, 2]
    reference: tuple[float, float]

    def hypervolume_of(self, configs: Sequence[int]) -> float:
        return hypervolume(self.truth[sorted(set(configs))], self.reference)


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


@dataclasses.dataclass
class Outcome:
    ratio: float  # seconds to the unpruned final hypervolume / unpruned seconds (inf: never)
    front_lost: bool
    pruned_share: float
    trials: int


def paired_outcome(baseline: Trace, pruned: Trace) -> Outcome:
    target, budget = baseline.hypervolume[-1], baseline.seconds[-1]
    reached = next(
        (s for s, hv in zip(pruned.seconds, pruned.hypervolume, strict=True) if hv >= target),
        math.inf,
    )
    return Outcome(
        ratio=reached / budget,
        front_lost=pruned.front_lost,
        pruned_share=pruned.pruned / max(1, pruned.trials),
        trials=pruned.trials,
    )


_REC: Recording | None = None
_CTX: ReplayContext | None = None


def _init_worker(epochs: int | None) -> None:
    global _REC, _CTX
    _REC = load_recording(epochs)
    _CTX = make_context(_REC)


def _run(task: ReplayTask) -> Trace:
    assert _REC is not None and _CTX is not None
    return run_replay(_REC, task, _CTX)


def evaluate(
    pool: Any,
    rules: Sequence[PruningRule],
    samplers: Sequence[str],
    replays: Sequence[int],
    seed_columns: tuple[int, ...],
    trials: int,
) -> dict[tuple[str, str], list[Outcome]]:
    """Every (sampler, rule) over the replays, each paired with the same replay unpruned."""
    base_tasks = [
        ReplayTask(s, r, seed_columns, NoPruning(), trials, None) for s in samplers for r in replays
    ]
    baselines = dict(
        zip(((t.sampler, t.replay) for t in base_tasks), pool.map(_run, base_tasks), strict=True)
    )
    tasks = [
        ReplayTask(s, r, seed_columns, rule, trials, baselines[s, r].seconds[-1])
        for rule in rules
        for s in samplers
        for r in replays
    ]
    traces = pool.map(_run, tasks, chunksize=4)
    results: dict[tuple[str, str], list[Outcome]] = {}
    for task, trace in zip(tasks, traces, strict=True):
        outcome = paired_outcome(baselines[task.sampler, task.replay], trace)
        results.setdefault((task.sampler, task.rule.name), []).append(outcome)
    return results


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


def loss_upper_bound(outcomes: Sequence[Outcome], confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of the true-front loss rate.

    With 0 losses in n replays it is 1 - (1 - confidence)**(1/n): 24 clean replays only show
    the rate is below 12%, so the default's headline uses more replays.
    """
    from scipy.stats import beta

    n, k = len(outcomes), sum(o.front_lost for o in outcomes)
    return 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    ratios = [o.ratio for o in outcomes]
    return {
        "replays": len(outcomes),
        "true_front_loss_rate": sum(o.front_lost for o in outcomes) / len(outcomes),
        "seconds_to_final_hv_ratio_median": quantile(ratios, 0.5),
        "seconds_to_final_hv_ratio_q25_q75": [quantile(ratios, 0.25), quantile(ratios, 0.75)],
        "reached_share": sum(math.isfinite(r) and r <= 1.0 for r in ratios) / len(ratios),
        "pruned_share_mean": float(np.mean([o.pruned_share for o in outcomes])),
        "trials_mean": float(np.mean([o.trials for o in outcomes])),
    }


def candidate_rules(rec: Recording, tuning: Sequence[int]) -> list[PruningRule]:
    m = rec.max_epochs
    rules: list[PruningRule] = []
    for grace in (1, 2, 3, 4, 6):
        for eta in (2, 3):
            if grace * eta < m or eta == 3:
                rules.append(RungRule(m, grace, eta))
    for grace, eta in ((1, 3), (2, 2)):
        rules.append(HyperbandRule(m, grace, eta))
    sd_ssim, sd_mse = rec.pooled_sd(tuning)  # the spread is measured on tuning seeds only
    for grace in (1, 2, 3):
        for eta in (2, 3):
            for margin in (1.0, 2.0):
                rules.append(NoiseRule(m, grace, eta, margin, sd_ssim, sd_mse))
            for min_complete in (3, 6):
                rules.append(EnvelopeRule(m, grace, eta, min_complete))
    return rules


def choose(
    table: dict[tuple[str, str], list[Outcome]], sampler: str, rules: Sequence[PruningRule]
) -> tuple[PruningRule, bool]:
    """Safety first: among rules meeting both goals, the lowest true-front loss, then the
    lowest median seconds ratio; if none meets both, the same order over all rules."""
    scored = [(summarise(table[sampler, r.name]), r) for r in rules]
    meeting = [
        (s, r)
        for s, r in scored
        if s["true_front_loss_rate"] <= LOSS_GOAL
        and s["seconds_to_final_hv_ratio_median"] <= RATIO_GOAL
    ]
    pool = meeting or scored
    best = min(
        pool,
        key=lambda sr: (sr[0]["true_front_loss_rate"], sr[0]["seconds_to_final_hv_ratio_median"]),
    )
    return best[1], bool(meeting)


def fmt_ratio(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.0%}"


@dataclasses.dataclass
class Horizon:
    """Every rule replayed at one number of epochs per trial; the default chosen there."""

    rec: Recording
    ctx: ReplayContext
    rules: list[PruningRule]
    tuned: dict[tuple[str, str], list[Outcome]]
    held: dict[tuple[str, str], list[Outcome]]
    default: PruningRule
    meets: bool
    default_outcomes: list[Outcome]  # the table's held-out replays and the extra ones


def replay_horizon(epochs: int | None, args: argparse.Namespace) -> Horizon:
    rec = load_recording(epochs)
    ctx = make_context(rec)
    half = len(rec.seeds) // 2
    tuning, held_out = tuple(range(half)), tuple(range(half, len(rec.seeds)))
    rules = candidate_rules(rec, tuning)
    with mp.get_context("fork").Pool(args.jobs, _init_worker, (epochs,)) as pool:
        tuned = evaluate(pool, rules, ("tpe",), range(args.tuning_replays), tuning, args.trials)
        default, meets = choose(tuned, "tpe", rules)
        # Every rule with TPE (the default sampler); with the others, the default, `run`'s
        # previous default and each family's best on the tuning seeds.
        key_rules = {default.name: default}
        if rec.max_epochs > 2:
            key_rules["rung g2 eta3"] = RungRule(rec.max_epochs, 2, 3)
        for family in sorted({type(r) for r in rules}, key=lambda f: f.__name__):
            best, _ = choose(tuned, "tpe", [r for r in rules if type(r) is family])
            key_rules.setdefault(best.name, best)
        # new sampler seeds as well as new curves
        replays = range(args.tuning_replays, args.tuning_replays + args.replays)
        held = evaluate(pool, rules, ("tpe",), replays, held_out, args.trials)
        others = [s for s in SAMPLERS if s != "tpe"]
        held.update(
            evaluate(pool, list(key_rules.values()), others, replays, held_out, args.trials)
        )
        # The default's headline numbers: held-out replays of it alone, beyond the table's.
        first = args.tuning_replays + args.replays
        extra = range(first, first + args.default_replays)
        confirmed = evaluate(pool, [default], ("tpe",), extra, held_out, args.trials)
    outcomes = held["tpe", default.name] + confirmed["tpe", default.name]
    return Horizon(rec, ctx, [*rules, *key_rules.values()], tuned, held, default, meets, outcomes)


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
    by_name = {r.name: r for r in h.rules}
    per_rule = {
        f"{sampler}/{name}": {
            "sampler": sampler,
            **by_name[name].describe(),
            **summarise(outcomes),
            "tuning": summarise(h.tuned[sampler, name]) if (sampler, name) in h.tuned else None,
        }
        for (sampler, name), outcomes in h.held.items()
    }
    headline = summarise(h.default_outcomes)
    half = len(h.rec.seeds) // 2
    sd_ssim, sd_mse = h.rec.pooled_sd(list(range(half)))  # what the noise rules were given
    return {
        "max_epochs": h.rec.max_epochs,
        "tuning_seeds": h.rec.seeds[:half],
        "held_out_seeds": h.rec.seeds[half:],
        "reference_point": {"ssim": h.ctx.reference[0], "mse": h.ctx.reference[1]},
        "true_front": [int(i) for i in np.flatnonzero(h.ctx.on_true_front)],
        "seed_sd_per_epoch_tuning_seeds": {"ssim": sd_ssim.tolist(), "mse": sd_mse.tolist()},
        "spearman_with_last_epoch": rank_correlations(h.rec),
        "default": {**h.default.describe(), "meets_goals_on_tuning_seeds": h.meets},
        "default_replays": headline["replays"],
        "true_front_loss_rate": headline["true_front_loss_rate"],
        "true_front_loss_rate_upper_95": loss_upper_bound(h.default_outcomes),
        "seconds_to_final_hv_ratio_median": headline["seconds_to_final_hv_ratio_median"],
        "seconds_to_final_hv_ratio_q25_q75": headline["seconds_to_final_hv_ratio_q25_q75"],
        "reached_share": headline["reached_share"],
        "per_rule": per_rule,
    }


def horizon_report(h: Horizon, data: dict[str, Any]) -> list[str]:
    rows = [
        [
            name,
            v["replays"],
            f"{v['true_front_loss_rate']:.0%}",
            fmt_ratio(v["seconds_to_final_hv_ratio_median"]),
            " – ".join(fmt_ratio(x) for x in v["seconds_to_final_hv_ratio_q25_q75"]),
            f"{v['reached_share']:.0%}",
            f"{v['pruned_share_mean']:.0%}",
            f"{v['tuning']['true_front_loss_rate']:.0%} / "
            f"{fmt_ratio(v['tuning']['seconds_to_final_hv_ratio_median'])}"
            if v["tuning"]
            else "",
            ("**default**" if v["rule"] == h.default.name else ""),
        ]
        for name, v in sorted(
            data["per_rule"].items(),
            key=lambda kv: (
                SAMPLERS.index(kv[1]["sampler"]),
                kv[1]["true_front_loss_rate"],
                kv[1]["seconds_to_final_hv_ratio_median"],
            ),
        )
    ]
    header = ["sampler/rule", "replays", "true-front loss", "seconds ratio (median)", "IQR"]
    header += ["reached", "pruned", "tuning seeds: loss / ratio", ""]
    rho = data["spearman_with_last_epoch"]
    verdict = (
        "met both goals on the tuning seeds"
        if h.meets
        else "no rule met both goals on the tuning seeds: the one losing the fewest "
        "true-front configurations, then the fastest"
    )
    return [
        f"## {h.rec.max_epochs} epochs per trial",
        "",
        f"Rules tuned with TPE on seeds {data['tuning_seeds']}; every row is on the held-out "
        f"seeds {data['held_out_seeds']} with new sampler seeds. Reference point: SSIM "
        f"{h.ctx.reference[0]:.4f}, MSE {h.ctx.reference[1]:.5f}. True front (seed means at "
        f"epoch {h.rec.max_epochs}): configurations {data['true_front']}. Spearman "
        f"correlation of each epoch's seed means with the last epoch's, SSIM: "
        + ", ".join(f"{x:.2f}" for x in rho["ssim"])
        + "; MSE: "
        + ", ".join(f"{x:.2f}" for x in rho["mse"])
        + ".",
        "",
        markdown_table(header, rows, ["l", "r", "r", "r", "r", "r", "r", "r", "l"]),
        "",
        f"Default at {h.rec.max_epochs} epochs: {h.default.name} ({verdict}). On the held-out "
        f"seeds, over {data['default_replays']} replays (the table's and more, new sampler "
        f"seeds): true-front loss {data['true_front_loss_rate']:.1%} (95% upper bound "
        f"{data['true_front_loss_rate_upper_95']:.1%}), seconds ratio median "
        f"{fmt_ratio(data['seconds_to_final_hv_ratio_median'])} (IQR "
        + " – ".join(fmt_ratio(x) for x in data["seconds_to_final_hv_ratio_q25_q75"])
        + f"), the unpruned hypervolume reached within its seconds in "
        f"{data['reached_share']:.0%} of them.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", action="store_true", help="replay (the only mode)")
    parser.add_argument("--replays", type=int, default=24, help="replays per sampler and rule")
    parser.add_argument(
        "--tuning-replays", type=int, default=32, help="replays per rule on the tuning seeds"
    )
    parser.add_argument(
        "--default-replays",
        type=int,
        default=72,
        help="more held-out replays of the chosen default alone, for its headline numbers",
    )
    parser.add_argument("--trials", type=int, default=24, help="the unpruned study's trials")
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument(
        "--quick-epochs",
        type=int,
        default=6,
        help="also replay the curves cut to this many epochs (the quick preset's; 0: skip)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    main_horizon = replay_horizon(None, args)
    quick = replay_horizon(args.quick_epochs, args) if args.quick_epochs else None
    elapsed = time.perf_counter() - started

    rec = main_horizon.rec
    data: dict[str, Any] = {
        "written": timestamp(),
        "machine": machine(tensorflow=False),
        "command": "python bench/bench_pruning.py " + " ".join(sys.argv[1:]),
        "curves": "bench/data/curves.json.gz",
        "curves_command": rec.raw["command"],
        "configs": len(rec.params),
        "seeds_per_config": len(rec.seeds),
        "trials_per_unpruned_study": args.trials,
        "replays": args.replays,
        "tuning_replays": args.tuning_replays,
        "goals": {"true_front_loss_rate": LOSS_GOAL, "seconds_ratio_median": RATIO_GOAL},
        **horizon_data(main_horizon),
        "replay_seconds": elapsed,
    }
    lines = [
        "# Pruning rules replayed from recorded curves",
        "",
        f"Written {data['written']} by `{data['command']}` in {elapsed:.0f} s; {data['machine']}.",
        "",
        f"Curves: {len(rec.params)} configurations drawn from the default search space x "
        f"{len(rec.seeds)} seeds x {rec.max_epochs} epochs, quick preset images "
        f"(`{rec.raw['command']}`). Each replay: the unpruned study runs {args.trials} "
        "trials; the pruned one, paired with it (same sampler seed, same seed draws), runs "
        "until it has spent the same seconds. Loss: share of replays in which a true-front "
        "configuration was sampled and stopped early. Ratio: seconds until the pruned study "
        "reached the unpruned study's final hypervolume / the unpruned study's seconds "
        "(never: not within them). Goals: loss <= 5%, ratio <= 40%.",
        "",
        *horizon_report(main_horizon, data),
    ]
    if quick is not None:
        data["quick_preset"] = horizon_data(quick)
        lines += horizon_report(quick, data["quick_preset"])
    write_result("pruning", "\n".join(lines), data)
    verdict = (
        "met"
        if data["true_front_loss_rate"] <= LOSS_GOAL
        and data["seconds_to_final_hv_ratio_median"] <= RATIO_GOAL
        else "not met"
    )
    summary = (
        f"held-out seeds, tpe, {data['default_replays']} replays: default at "
        f"{rec.max_epochs} epochs {main_horizon.default.name}: true-front loss "
        f"{data['true_front_loss_rate']:.1%}, seconds ratio median "
        f"{fmt_ratio(data['seconds_to_final_hv_ratio_median'])} "
        f"(goals <= 5% and <= 40%: {verdict})"
    )
    if quick is not None:
        q = data["quick_preset"]
        quick_verdict = (
            "met"
            if q["true_front_loss_rate"] <= LOSS_GOAL
            and q["seconds_to_final_hv_ratio_median"] <= RATIO_GOAL
            else "not met"
        )
        summary += (
            f"; at {quick.rec.max_epochs} epochs {quick.default.name}: loss "
            f"{q['true_front_loss_rate']:.1%}, ratio "
            f"{fmt_ratio(q['seconds_to_final_hv_ratio_median'])} ({quick_verdict})"
        )
    print(summary)


if __name__ == "__main__":
    sys.exit(main())
