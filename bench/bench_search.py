"""Search efficiency at equal training budget: TPE + Pareto pruning vs TPE vs random search.

Scenario (small and fixed): the bundled MNIST subset, 1,000 training images, 6 epochs per
trial, batch 16 (at batch 64, 96 steps leave every configuration at the mean digit: SSIM ~0.1),
validation on the 400-image validation split; a factorial grid of 32 configurations:
latent_dim {2, 4, 8, 16} x n_layers {1, 3} x loss {bce, mse} x beta {0.5, 2}, with filters 32
and dense_units 64.

Method (tabular benchmark, as HPOBench's tables and Syne Tune's simulator do):
1. Record once, by real training with `search.training.train_vae`, the per-epoch validation
   (SSIM, MSE) curve of every grid configuration; cached in bench/results/search_curves.json
   (written after each configuration, so an interrupted recording resumes).
2. Replay each strategy as a real Optuna study over the grid (one CategoricalDistribution per
   grid dimension, so every suggestion is a recorded configuration), the sampler exactly as
   `search.study.make_sampler` builds it: (a) TPE + `search.pruning.prune_reason` called epoch
   by epoch with the run's default rule (grace 1, eta 3: rungs at epochs 1 and 3), a pruned
   trial raising `optuna.TrialPruned`; (b) TPE, no pruning; (c) random, no pruning; and two
   more to explain the result: (a2) TPE + pruning with grace 2 (one rung, at epoch 2) and
   (d) random + pruning. Every epoch a trial looks up counts against the budget; a study stops
   once the budget is spent.
3. Metric: hypervolume of the validation Pareto front of the COMPLETE trials, in minimise-both
   form (-SSIM, MSE) against the reference point (0, 0.25): the area between the front and
   (SSIM = 0, MSE = 0.25), i.e. everything better than a blank prediction's worst case.
   Reported as a percentage of the grid's best possible hypervolume (all 32 configurations).
   Headline: the fraction of (c)'s epochs that (a) needs to reach (c)'s final hypervolume,
   per seed (paired seeds) and mean, at a budget of 12 full trials (72 epochs; random search
   then sees about a third of the grid); also at 6, 18 and 24 full trials. Target <= 50%.

Then a live check (real training: `search.study.Objective` on a SQLite study, the same grid,
the scenario registered as a preset in this process only) of (a) against (c) at a tiny budget.
The per-trial overhead outside training is measured by bench/bench_overhead.py.

Usage: python bench/bench_search.py [--seeds 20] [--budget-trials 12] [--live-epochs 30]
                                    [--no-live] [--record]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from common import (
    RESULTS,
    SHARED_NOTE,
    machine,
    markdown_table,
    timestamp,
    write_result,
)
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

CURVES = RESULTS / "search_curves.json"
GRID: dict[str, list[Any]] = {
    "latent_dim": [2, 4, 8, 16],
    "n_layers": [1, 3],
    "loss": ["bce", "mse"],
    "beta": [0.5, 2.0],
}
FIXED = {"filters": 32, "dense_units": 64}
SCENARIO = {
    "data": "bundled",
    "subset": 1000,
    "epochs": 6,
    "batch_size": 16,
    "validation_subset": 400,
    "seed": 0,
}
REFERENCE_POINT = (0.0, 0.25)  # (-SSIM, MSE), both minimised
ETA, GRACE = 3, 1  # `python -m search run`'s defaults
LIVE_PRESET = "bench-scenario"


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str  # as `search.study.make_sampler` names it
    grace_epochs: int | None  # None: no pruning


# (a), (b), (c) are the brief's; (a2) and (d) tell TPE's share from pruning's and try grace 2.
STRATEGIES = {
    "a": Strategy("TPE + Pareto pruning (the run's defaults: grace 1, eta 3)", "tpe", GRACE),
    "a2": Strategy("TPE + Pareto pruning, grace 2 (one rung, at epoch 2)", "tpe", 2),
    "b": Strategy("TPE, no pruning", "tpe", None),
    "c": Strategy("random, no pruning", "random", None),
    "d": Strategy("random + Pareto pruning (grace 1, eta 3)", "random", GRACE),
}
COMPARED = ("a", "a2", "b", "d")  # each against (c)


def grid_space() -> dict[str, CategoricalDistribution]:
    return {name: CategoricalDistribution(values) for name, values in GRID.items()}


def config_key(params: dict[str, Any]) -> str:
    return json.dumps({name: params[name] for name in GRID}, sort_keys=True)


# ---------------------------------------------------------------------------- recording


def load_scenario_data() -> Any:
    from search.data import load_mnist

    return load_mnist(SCENARIO["data"], seed=SCENARIO["seed"], subset=SCENARIO["subset"])


def scenario_config(seed: int) -> Any:
    from search.training import TrainConfig

    return TrainConfig(
        epochs=SCENARIO["epochs"],
        batch_size=SCENARIO["batch_size"],
        seed=seed,
        validation_subset=SCENARIO["validation_subset"],
        train_eval_subset=200,
        test_eval_subset=200,
    )


def record_curves(force: bool) -> dict[str, Any]:
    """Train every grid configuration once (resuming a partial recording) and cache the curves."""
    from search.training import train_vae

    table: dict[str, Any] = {"scenario": SCENARIO, "grid": GRID, "fixed": FIXED, "configs": {}}
    if CURVES.exists() and not force:
        stored = json.loads(CURVES.read_text())
        if stored.get("scenario") == SCENARIO and stored.get("grid") == GRID:
            table = stored
    combos = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    missing = [p for p in combos if config_key(p) not in table["configs"]]
    if not missing:
        return table
    data = load_scenario_data()
    table["data"] = {"counts": data.provenance["counts"], "source": data.provenance["source"]}
    print(
        f"recording {len(missing)} of {len(combos)} configurations "
        f"({SCENARIO['epochs']} epochs on {len(data.train)} images each)",
        flush=True,
    )
    started = time.perf_counter()
    for i, params in enumerate(missing, start=1):
        result = train_vae({**params, **FIXED}, data, scenario_config(SCENARIO["seed"]))
        table["configs"][config_key(params)] = {
            "params": params,
            "curve": [
                {
                    "epoch": r["epoch"],
                    "val_ssim": r["val_ssim"],
                    "val_mse": r["val_mse"],
                    "seconds": r["seconds"],
                }
                for r in result.curve
            ],
            "val_ssim": result.val_ssim,
            "val_mse": result.val_mse,
            "wall_time_s": result.wall_time_s,
            "n_params": result.n_params,
        }
        table["recording_seconds"] = table.get("recording_seconds", 0.0) + result.wall_time_s
        CURVES.write_text(json.dumps(table, indent=1) + "\n")
        print(
            f"  [{i}/{len(missing)}] {config_key(params)}: SSIM {result.val_ssim:.4f} "
            f"MSE {result.val_mse:.5f} ({result.wall_time_s:.1f} s; "
            f"{time.perf_counter() - started:.0f} s so far)",
            flush=True,
        )
    return table


# ---------------------------------------------------------------------------- hypervolume


def hypervolume(
    points: Sequence[tuple[float, float]], reference: tuple[float, float] = REFERENCE_POINT
) -> float:
    """2-D hypervolume of (ssim, mse) points, both turned into minimised (-ssim, mse).

    Sweep the points by -ssim ascending; each point that improves on the best mse so far adds
    the rectangle between it, the next sweep position and the reference point.
    """
    minimised = sorted(
        (-s, m)
        for s, m in points
        if math.isfinite(s) and math.isfinite(m) and -s < reference[0] and m < reference[1]
    )
    volume, best_mse = 0.0, reference[1]
    for x, y in minimised:
        if y < best_mse:
            volume += (reference[0] - x) * (best_mse - y)
            best_mse = y
    return volume


def check_hypervolume_against_optuna() -> str:
    """Cross-check the 2-D sweep against Optuna's own (private) hypervolume on random fronts."""
    import numpy as np

    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:
        return "Optuna's hypervolume not importable; cross-check skipped"
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(50):
        pts = np.column_stack([rng.uniform(0.2, 0.9, 12), rng.uniform(0.005, 0.1, 12)])
        ours = hypervolume([tuple(p) for p in pts])
        theirs = compute_hypervolume(
            np.column_stack([-pts[:, 0], pts[:, 1]]), np.array(REFERENCE_POINT)
        )
        worst = max(worst, abs(ours - theirs))
    assert worst < 1e-12, worst
    return (
        "2-D hypervolume agrees with optuna._hypervolume.compute_hypervolume "
        f"(max diff {worst:.0e})"
    )


# ---------------------------------------------------------------------------- replay


@dataclasses.dataclass
class Trace:
    """One strategy and seed: (cumulative epochs, hypervolume) after every trial."""

    strategy: str
    seed: int
    points: list[tuple[int, float]]
    trials: int
    pruned: int
    distinct: int
    outcomes: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (config, state)

    def hv_at(self, epochs: float) -> float:
        """Hypervolume with at most `epochs` epochs spent (0 before the first trial completes)."""
        best = 0.0
        for spent, hv in self.points:
            if spent > epochs:
                break
            best = hv
        return best

    def epochs_to_reach(self, target: float) -> float:
        for spent, hv in self.points:
            if hv >= target - 1e-12:
                return spent
        return math.inf


def replay(table: dict[str, Any], strategy: str, seed: int, budget: int) -> Trace:
    """Run one strategy as a real Optuna study on the recorded curves until `budget` epochs."""
    from search.pruning import ParetoPrunerConfig, prune_reason
    from search.space import suggest_params
    from search.study import DIRECTIONS, make_sampler

    configs = table["configs"]
    epochs = SCENARIO["epochs"]
    plan = STRATEGIES[strategy]
    pruner = (
        ParetoPrunerConfig(max_epochs=epochs, grace_epochs=plan.grace_epochs, eta=ETA)
        if plan.grace_epochs
        else None
    )
    sampler = make_sampler(plan.sampler, seed)
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    space = grid_space()
    spent = [0]
    front: list[tuple[float, float]] = []
    points: list[tuple[int, float]] = []
    seen: set[str] = set()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = suggest_params(trial, space)
        seen.add(config_key(params))
        record = configs[config_key(params)]
        for row in record["curve"]:
            spent[0] += 1
            if pruner is not None:
                reason = prune_reason(
                    study, trial, row["epoch"], row["val_ssim"], row["val_mse"], config=pruner
                )
                if reason:
                    raise optuna.TrialPruned(reason)
        return record["val_ssim"], record["val_mse"]

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            front.append((trial.values[0], trial.values[1]))
        points.append((spent[0], hypervolume(front)))
        if spent[0] >= budget:
            study.stop()

    study.optimize(objective, callbacks=[after_trial])
    trials = study.get_trials(deepcopy=False)
    outcomes = [(config_key(t.params), t.state.name) for t in trials if t.params]
    return Trace(
        strategy,
        seed,
        points,
        len(trials),
        sum(t.state == TrialState.PRUNED for t in trials),
        len(seen),
        outcomes,
    )


def replay_all(table: dict[str, Any], seeds: int, budget: int) -> dict[str, list[Trace]]:
    traces: dict[str, list[Trace]] = {s: [] for s in STRATEGIES}
    for seed in range(seeds):
        for strategy in STRATEGIES:
            traces[strategy].append(replay(table, strategy, seed, budget))
    return traces


def pct(value: float, best: float) -> str:
    return f"{100 * value / best:.1f}%"


def mean_sd(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def paired_fractions(traces: dict[str, list[Trace]], budget: float, strategy: str) -> list[float]:
    """Per seed: epochs `strategy` needs to reach (c)'s hypervolume at `budget`, over `budget`."""
    return [
        traces[strategy][i].epochs_to_reach(c.hv_at(budget)) / budget
        for i, c in enumerate(traces["c"])
    ]


def describe_fractions(fractions: Sequence[float]) -> str:
    """Median over all seeds (not reached = infinite), mean over the seeds that reached it."""
    finite = [f for f in fractions if math.isfinite(f)]
    middle = statistics.median(fractions)
    med = f"{middle:.0%}" if math.isfinite(middle) else "not reached"
    mean = f"{statistics.mean(finite):.0%}" if finite else "-"
    return (
        f"median {med}; mean of reached {mean} (reached {len(finite)}/{len(fractions)}, "
        f"<= 50%: {sum(f <= 0.5 for f in fractions)}/{len(fractions)})"
    )


def replay_report(
    table: dict[str, Any],
    traces: dict[str, list[Trace]],
    budget: int,
    full_trial: int,
    budgets: Sequence[int],
) -> tuple[str, dict[str, Any]]:
    configs = list(table["configs"].values())
    best_hv = hypervolume([(c["val_ssim"], c["val_mse"]) for c in configs])
    seeds = len(traces["c"])

    # HV against cumulative epochs, mean over seeds, as % of the grid's best.
    checkpoints = [budget * f for f in (0.125, 0.25, 0.5, 0.75, 1.0)]
    hv_rows = []
    for s, plan in STRATEGIES.items():
        name = plan.name
        cells = [mean_sd([100 * t.hv_at(e) / best_hv for t in traces[s]]) for e in checkpoints]
        trials = mean_sd([float(sum(spent <= budget for spent, _ in t.points)) for t in traces[s]])
        hv_rows.append([f"({s}) {name}", *cells, trials])
    hv_table = markdown_table(
        [
            "strategy",
            *[f"HV % at {e:.0f} epochs" for e in checkpoints],
            f"trials within {budget} epochs",
        ],
        hv_rows,
        ["l"] + ["r"] * (len(checkpoints) + 1),
    )

    # Paired seeds: epochs each strategy needs to reach (c)'s final hypervolume.
    fractions = {s: paired_fractions(traces, budget, s) for s in COMPARED}
    seed_rows = []
    for i in range(seeds):
        row = [i, pct(traces["c"][i].hv_at(budget), best_hv)]
        for s in COMPARED:
            f = fractions[s][i]
            row.append(f"{f * budget:.0f} ({f:.0%})" if math.isfinite(f) else "not reached")
        seed_rows.append(row)
    seed_rows.append(
        [
            "mean",
            pct(statistics.mean(t.hv_at(budget) for t in traces["c"]), best_hv),
            *[describe_fractions(fractions[s]) for s in COMPARED],
        ]
    )
    seed_table = markdown_table(
        ["seed", "(c) final HV", *[f"({s}) epochs to reach it" for s in COMPARED]],
        seed_rows,
        ["l", "r", *["r"] * len(COMPARED)],
    )
    budget_rows = [
        [
            f"{b} ({b // full_trial} full trials)",
            pct(statistics.mean(t.hv_at(b) for t in traces["c"]), best_hv),
            *[describe_fractions(paired_fractions(traces, b, s)) for s in COMPARED],
        ]
        for b in budgets
    ]
    budget_table = markdown_table(
        [
            "budget (epochs)",
            "(c) final HV, mean",
            *[f"({s}) fraction of (c)'s epochs" for s in COMPARED],
        ],
        budget_rows,
        ["l", "r", *["r"] * len(COMPARED)],
    )
    # Harder comparison than pairing: (a) against the median of (c)'s final hypervolumes.
    median_target = statistics.median(t.hv_at(budget) for t in traces["c"])
    vs_median = [t.epochs_to_reach(median_target) / budget for t in traces["a"]]
    finite_a = [f for f in fractions["a"] if math.isfinite(f)]
    summary = {
        "best_hv": best_hv,
        "budget_epochs": budget,
        "fractions_per_seed": fractions,
        "mean_fraction_a": statistics.mean(fractions["a"]) if len(finite_a) == seeds else math.inf,
        "fraction_a_vs_median_c": vs_median,
        "by_budget": {b: {s: paired_fractions(traces, b, s) for s in COMPARED} for b in budgets},
        # The hypervolume curves, rounded; per-trial outcomes would make the file ~1 MB.
        "traces": {
            s: [
                {
                    "seed": t.seed,
                    "trials": t.trials,
                    "pruned": t.pruned,
                    "points": [(spent, round(hv, 6)) for spent, hv in t.points],
                }
                for t in ts
            ]
            for s, ts in traces.items()
        },
    }
    median_a = statistics.median(fractions["a"])
    median_text = f"{median_a:.0%}" if math.isfinite(median_a) else "not reached"
    if len(finite_a) == seeds:
        headline = (
            f"**(a) reaches (c)'s final hypervolume with {statistics.mean(finite_a):.0%} "
            f"of (c)'s epochs on average (median {median_text}; paired seeds; target "
            f"<= 50%)**"
        )
    else:
        headline = (
            f"**(a) did not reach (c)'s final hypervolume within the budget on "
            f"{seeds - len(finite_a)} of {seeds} seeds** (median over all seeds: "
            f"{median_text}); where it did, it needed "
            f"{statistics.mean(finite_a) if finite_a else math.nan:.0%} of (c)'s "
            f"epochs on average"
        )
    # Why pruning loses: what happened to the grid's best configuration when it was sampled.
    top = max(table["configs"], key=lambda k: table["configs"][k]["val_ssim"])
    fate_rows = []
    for s in STRATEGIES:
        sampled = pruned = completed = 0
        for t in traces[s]:
            within = t.outcomes[: sum(spent <= budget for spent, _ in t.points)]
            states = [state for key, state in within if key == top]
            sampled += bool(states)
            pruned += bool(states) and "COMPLETE" not in states
            completed += "COMPLETE" in states
        fate_rows.append(
            [f"({s})", f"{sampled}/{seeds}", f"{completed}/{seeds}", f"{pruned}/{seeds}"]
        )
    fate_table = markdown_table(
        ["strategy", "sampled the best config", "completed it", "only ever pruned it"],
        fate_rows,
        ["l", "r", "r", "r"],
    )
    text = "\n\n".join(
        [
            f"Headline budget: {budget} epochs per study = {budget // full_trial} full trials of "
            f"{full_trial} epochs; {seeds} seeds per strategy (seed i of every strategy = sampler "
            f"seed i; TPE's first 10 trials are random, from the same seed). Grid's best "
            f"hypervolume (all {len(configs)} configurations): {best_hv:.5f}. Mean ± standard "
            f"deviation over seeds.",
            hv_table,
            f"Epochs needed to reach (c)'s hypervolume at {budget} epochs, paired by seed:",
            seed_table,
            headline + f"; {sum(f <= 0.5 for f in fractions['a'])}/{seeds} seeds within 50%. "
            "Against the median of (c)'s final hypervolumes instead of the paired seed, (a) needs: "
            + ", ".join("not reached" if not math.isfinite(f) else f"{f:.0%}" for f in vs_median)
            + ".",
            "Other budgets (same studies, read at other epoch counts; the strategies do not know "
            "the budget):",
            budget_table,
            f"The grid's best configuration by final SSIM, {top}, within {budget} epochs "
            f"(per seed):",
            fate_table,
        ]
    )
    return text, summary


def table_summary(table: dict[str, Any]) -> str:
    """A few lines on what the recorded grid looks like, so the replay can be judged."""
    configs = sorted(table["configs"].values(), key=lambda c: -c["val_ssim"])
    pareto = [
        c
        for c in configs
        if not any(
            o["val_ssim"] >= c["val_ssim"]
            and o["val_mse"] <= c["val_mse"]
            and (o["val_ssim"] > c["val_ssim"] or o["val_mse"] < c["val_mse"])
            for o in configs
        )
    ]
    ssim = [c["val_ssim"] for c in configs]
    mse = [c["val_mse"] for c in configs]
    front = "; ".join(
        f"{json.dumps(c['params'], separators=(',', ':'))} SSIM {c['val_ssim']:.3f} "
        f"MSE {c['val_mse']:.4f}"
        for c in pareto
    )
    from scipy.stats import spearmanr

    final_ssim = [c["val_ssim"] for c in configs]
    final_mse = [c["val_mse"] for c in configs]

    def rho(epoch: int, key: str, final: list[float]) -> float:
        return float(spearmanr([c["curve"][epoch - 1][key] for c in configs], final)[0])

    early = "; ".join(
        f"epoch {e}: SSIM {rho(e, 'val_ssim', final_ssim):.2f}, "
        f"MSE {rho(e, 'val_mse', final_mse):.2f}"
        for e in (1, 2, 3)
    )
    return (
        f"How well early epochs predict the final ranking (Spearman rank correlation with "
        f"epoch {SCENARIO['epochs']}, over the grid): {early}.\n\n"
        f"Recorded grid: {len(configs)} configurations, validation SSIM "
        f"{min(ssim):.3f}-{max(ssim):.3f}, MSE {min(mse):.4f}-{max(mse):.4f}; recording "
        f"took {table.get('recording_seconds', float('nan')):.0f} s of training wall time. "
        f"Its Pareto front ({len(pareto)} configurations): {front}."
    )


# ---------------------------------------------------------------------------- live runs


def live_run(strategy: str, budget: int, data: Any, workdir: Path) -> dict[str, Any]:
    """(a) or (c) with real training through `search.study.Objective` until `budget` epochs."""
    import search.study as study_module
    from search import storage as storage_module

    options = study_module.RunOptions(
        study=f"bench-live-{strategy}",
        preset=LIVE_PRESET,
        data=SCENARIO["data"],
        seed=0,
        sampler=STRATEGIES[strategy].sampler,
        pruning=STRATEGIES[strategy].grace_epochs is not None,
        eta=ETA,
        grace_epochs=STRATEGIES[strategy].grace_epochs or GRACE,
        report=False,
    )
    url = f"sqlite:///{workdir}/live-{strategy}.db"
    storage = storage_module.open_storage(url)
    study = optuna.create_study(
        study_name=options.study,
        storage=storage,
        directions=study_module.DIRECTIONS,
        sampler=study_module.make_sampler(options.sampler, options.seed),
    )
    store = storage_module.artifact_store(workdir / f"artifacts-{strategy}")
    objective = study_module.Objective(options, grid_space(), data, store, target_total=10**6)
    spent = [0]
    front: list[tuple[float, float]] = []
    points: list[tuple[int, float]] = []

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        spent[0] += int(trial.user_attrs.get("epochs_run", 0))
        if trial.state == TrialState.COMPLETE:
            front.append((trial.values[0], trial.values[1]))
        points.append((spent[0], hypervolume(front)))
        print(
            f"    ({strategy}) trial {trial.number} {trial.state.name.lower()} after "
            f"{trial.user_attrs.get('epochs_run')} epochs; {spent[0]} epochs spent, HV "
            f"{points[-1][1]:.5f}",
            flush=True,
        )
        if spent[0] >= budget:
            study.stop()

    started = time.perf_counter()
    study.optimize(objective, callbacks=[after_trial])
    trials = study.get_trials(deepcopy=False)
    return {
        "strategy": strategy,
        "points": points,
        "trials": len(trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "seconds": time.perf_counter() - started,
    }


def live_report(runs: dict[str, dict[str, Any]], budget: int) -> str:
    a, c = runs["a"], runs["c"]
    target = Trace("c", 0, [tuple(p) for p in c["points"]], 0, 0, 0).hv_at(budget)
    trace_a = Trace("a", 0, [tuple(p) for p in a["points"]], 0, 0, 0)
    need = trace_a.epochs_to_reach(target)
    rows = [
        [
            f"({s}) {STRATEGIES[s].name}",
            r["trials"],
            r["pruned"],
            r["points"][-1][0],
            f"{Trace(s, 0, [tuple(p) for p in r['points']], 0, 0, 0).hv_at(budget):.5f}",
            f"{r['seconds']:.0f}",
        ]
        for s, r in runs.items()
    ]
    table = markdown_table(
        ["strategy (live)", "trials", "pruned", "epochs spent", f"HV at {budget} epochs", "wall s"],
        rows,
        ["l", "r", "r", "r", "r", "r"],
    )
    verdict = (
        f"(a) reached (c)'s final hypervolume ({target:.5f}) after {need:.0f} epochs "
        f"= {need / budget:.0%} of the budget."
        if math.isfinite(need)
        else f"(a) did not reach (c)'s final hypervolume ({target:.5f}) within {budget} "
        f"epochs (its own: {trace_a.hv_at(budget):.5f})."
    )
    return "\n\n".join(
        [
            table,
            verdict + " One seed and a tiny budget: a smoke check that the "
            "replay's mechanics hold with real training (training seeds vary per "
            "trial here, unlike the table), not a measurement of the ratio.",
        ]
    )


def brief(data: dict[str, Any]) -> str:
    """The few numbers the brief asks for, on top of the report."""
    replay = data["replay"]
    lines = ["## In brief"]
    for s in COMPARED:
        fractions = replay["fractions_per_seed"][s]
        lines.append(
            f"- ({s}) {STRATEGIES[s].name}: epochs to reach (c)'s hypervolume at "
            f"{replay['budget_epochs']} epochs, as a fraction of them, per seed: "
            + ", ".join("not reached" if not math.isfinite(f) else f"{f:.0%}" for f in fractions)
            + f"; {describe_fractions(fractions)}."
        )
    if "live" in data:
        live = data["live"]
        lines.append(
            f"- Live check, real training: (a) ran {live['a']['trials']} trials "
            f"({live['a']['pruned']} pruned), (c) {live['c']['trials']}, on the same "
            f"epoch budget; see below."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--budget-trials",
        type=int,
        default=12,
        help="budget in full trials' worth of epochs (default 12 x 6 = 72)",
    )
    parser.add_argument(
        "--live-epochs",
        type=int,
        default=30,
        help="epoch budget of each live run (default 30 = 5 full trials)",
    )
    parser.add_argument("--no-live", action="store_true", help="skip the live confirmation")
    parser.add_argument("--record", action="store_true", help="re-record the curves")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from search.pruning import ParetoPrunerConfig

    started = time.perf_counter()
    described = machine()
    table = record_curves(args.record)
    full_trial = SCENARIO["epochs"]
    budget = args.budget_trials * full_trial
    hv_check = check_hypervolume_against_optuna()
    replay_started = time.perf_counter()
    budgets = sorted({budget // 2, budget, budget * 3 // 2, budget * 2})
    traces = replay_all(table, args.seeds, max(budgets))
    replay_seconds = time.perf_counter() - replay_started
    replay_text, summary = replay_report(table, traces, budget, full_trial, budgets)
    print(replay_text, flush=True)

    sections = [
        "# Search efficiency at equal training budget (bench/bench_search.py)",
        f"Run {timestamp()} in {{total}} s. Machine: {described}.",
        SHARED_NOTE.replace(
            "variants are interleaved and medians reported, and CPU-seconds "
            "(less sensitive to the load) are given beside them",
            "the replay's results do not depend on timing",
        ),
        "## Scenario and method",
        f"Bundled MNIST, {SCENARIO['subset']} training images "
        f"({table.get('data', {}).get('counts', {})}), {SCENARIO['epochs']} epochs per trial, "
        f"batch {SCENARIO['batch_size']}, training seed {SCENARIO['seed']}; grid "
        f"{json.dumps(GRID)} with {json.dumps(FIXED)} ({len(table['configs'])} configurations). "
        f"Curves recorded once by `train_vae` into `bench/results/search_curves.json`, then "
        f"replayed as real Optuna studies (samplers from `search.study.make_sampler`; pruning by "
        f"`search.pruning.prune_reason` epoch by epoch, eta {ETA}; grace 1 puts rungs at epochs "
        f"{ParetoPrunerConfig(full_trial, GRACE, ETA).rungs}, grace 2 at "
        f"{ParetoPrunerConfig(full_trial, 2, ETA).rungs}). The brief's strategies are (a), (b) "
        f"and (c); (a2) and (d) are added to tell the share of TPE from that of pruning and to "
        f"try a later first rung. Hypervolume of the COMPLETE trials' validation front in "
        f"(-SSIM, MSE) against reference point {REFERENCE_POINT}, as % of the grid's best. "
        f"{hv_check}. Replay of {len(STRATEGIES) * args.seeds} studies took "
        f"{replay_seconds:.0f} s.",
        table_summary(table),
        "## Replay: hypervolume against cumulative epochs",
        replay_text,
    ]
    data: dict[str, Any] = {
        "machine": described,
        "scenario": SCENARIO,
        "grid": GRID,
        "reference_point": REFERENCE_POINT,
        "replay": summary,
    }

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        workdir = Path(tmp)
        if not args.no_live:
            from search.space import PRESETS, Preset
            from search.training import configure_device

            configure_device()
            live_data = load_scenario_data()
            runs = {}
            # The recorded scenario as a preset, for this process only, so the live studies
            # train exactly what the table holds (the shipped presets use batch 64).
            PRESETS[LIVE_PRESET] = Preset(
                epochs=SCENARIO["epochs"],
                subset=SCENARIO["subset"],
                batch_size=SCENARIO["batch_size"],
                validation_subset=SCENARIO["validation_subset"],
                train_eval_subset=200,
                test_eval_subset=200,
            )
            try:
                for strategy in ("c", "a"):
                    runs[strategy] = live_run(strategy, args.live_epochs, live_data, workdir)
            finally:
                del PRESETS[LIVE_PRESET]
            runs = {"a": runs["a"], "c": runs["c"]}
            sections += [
                f"## Live check: real training, {args.live_epochs} epochs each",
                live_report(runs, args.live_epochs),
            ]
            data["live"] = runs
    sections.insert(sections.index("## Scenario and method"), brief(data))
    report = "\n\n".join(sections).replace("{total}", f"{time.perf_counter() - started:.0f}")
    write_result("search", report, data)


if __name__ == "__main__":
    main()
