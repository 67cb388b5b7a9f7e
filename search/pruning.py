"""Multi-objective rung pruning: asynchronous successive halving ranked by Pareto fronts.

Optuna's pruners need `trial.report`, which multi-objective studies refuse, so this module
brings its own rule in the spirit of MO-ASHA (Schmucker et al. 2021, arXiv 2106.12639).

Rule. Rungs sit at `grace_epochs * eta**i` epochs, strictly below `max_epochs`. A trial that
reaches a rung records `(ssim, mse)` there. Once `n >= eta` trials (itself included) have
results at that rung, all of them are ranked: non-dominated sorting on `(-ssim, mse)` first,
then, inside a front, larger hypervolume contribution (on objectives min-max normalised over the
rung) first, then the values themselves (better SSIM first). Results with a NaN or infinite
value rank after every finite one. The trial goes on iff it is on the rung's first front, or
its rank is within the top `max(1, n // eta)` (Optuna's SuccessiveHalvingPruner keeps the same
count), or it ties exactly with the last trial kept.

Why nothing depends on arrival order: the ranking looks only at the values, and equal values
share one fate. A trial number never decides (an earlier rule broke ties by it, so a newcomer
that halved the best MSE was pruned because an older trial with the best SSIM came first).

Why keep the whole first front: each of its points is the best trade-off seen so far for some
weighting of the two objectives; a rung that keeps one trial would otherwise have to drop the
best SSIM or the best MSE. With SSIM and MSE as correlated as they are, first fronts are short.

Why a trial that dominates every other point is never pruned: it is alone on the first front.

Noise margin (`noise_margin` > 0; an option, no preset's default). One training is one
draw: at an early rung two seeds of one configuration differ by more than most configurations
do. So a trial the ranking would prune is stopped only if another trial at the rung beats it
by more than `noise_margin` seed-to-seed SDs in both SSIM and MSE; otherwise it is kept as
"within the noise". The SD at a rung is the study's own, pooled over its repeated
configurations (sweeps with --repeats, confirmation runs) once they give `MIN_SPREAD_DOF`
degrees of freedom there; before that, the spread recorded for the pruning benchmark
(`RECORDED_SEED_SD`). Why: on curves recorded under 4 seeds, epoch-2 rankings predicted the
epoch-12 ranking with Spearman 0.37, large latents started last and finished first, and the
plain rule with a first rung at 2 epochs stopped a true-front configuration in a quarter of
the replayed studies; the margin kept them (bench/results/pruning.md).

Envelope (`envelope_min_complete` > 0; the full preset's default, with 6). Another guard: a
trial the ranking would prune is stopped only if even its best case loses: its rung values
improved by the largest gains any completed trial of the study made from that rung to its last
epoch (SSIM and MSE each by its own largest gain) must be dominated by a completed trial's
final values. Until `envelope_min_complete` trials have completed through the rung nothing is
stopped. It needs no outside number: a study whose slow starters gained much after the rung
stops little.

Designed trials (anything enqueued) are judged by no rule here: the objective records their
rung values (they serve as references for sampled trials) and never prunes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import optuna

from search import records
from search.pareto import hypervolume_contribution, non_dominated_sort

# Seed-to-seed SD of validation SSIM and MSE after epochs 1, 2, ..., pooled over the 48
# configurations x the 2 tuning seeds recorded by bench/record_curves.py (quick preset,
# bundled data; bench/results/pruning.json "seed_sd_per_epoch_tuning_seeds", the spread the
# benchmark's noise rules were given; a test checks they agree). Later epochs use
# the last value. For the full preset (more images per epoch) the spread is smaller, so
# borrowing these makes the rule more careful there, not less.
RECORDED_SEED_SD: dict[str, tuple[float, ...]] = {
    "ssim": (
        0.0166,
        0.0247,
        0.0364,
        0.0631,
        0.0672,
        0.0745,
        0.08,
        0.078,
        0.0762,
        0.0765,
        0.0795,
        0.0809,
    ),
    "mse": (
        0.01334,
        0.01084,
        0.00848,
        0.00814,
        0.00498,
        0.00523,
        0.0058,
        0.00566,
        0.00551,
        0.00549,
        0.00569,
        0.00581,
    ),
}
MIN_SPREAD_DOF = 4  # below this the study's own spread is too rough to use


@dataclass(frozen=True)
class ParetoPrunerConfig:
    """When to judge trials: rungs at `grace_epochs * eta**i` epochs below `max_epochs`.

    `noise_margin`: stop a trial only if another beats it at the rung by more than this many
    seed-to-seed SDs in both objectives (0: off). `envelope_min_complete`: stop a trial only if
    its best case loses, judged once this many trials completed through the rung (0: off).
    With both off the ranking alone decides.
    """

    max_epochs: int
    grace_epochs: int = 1
    eta: int = 3
    noise_margin: float = 0.0
    envelope_min_complete: int = 0  # 0: no envelope guard

    def __post_init__(self) -> None:
        rung_epochs(self.grace_epochs, self.eta, self.max_epochs)  # validates

    @property
    def rungs(self) -> list[int]:
        """The rung epochs (1-based), ascending."""
        return rung_epochs(self.grace_epochs, self.eta, self.max_epochs)


class RankedTrial(NamedTuple):
    """One trial's place at a rung: `front` is 1-based; results with NaN share the last front."""

    number: int
    front: int


class RungDecision(NamedTuple):
    """The verdict for one trial at one rung: `rank` is 1-based among `n` results."""

    prune: bool
    rank: int
    front: int
    n: int
    keep: int


def rung_epochs(grace_epochs: int, eta: int, max_epochs: int) -> list[int]:
    """Return `[grace_epochs * eta**i for i = 0, 1, ...]` strictly below `max_epochs`.

    The final epoch is never a rung: a trial that reaches it completes. Raises ValueError
    for `grace_epochs < 1`, `eta < 2` or `max_epochs < 1`.
    """
    if grace_epochs < 1 or eta < 2 or max_epochs < 1:
        raise ValueError(
            f"pruning needs grace_epochs >= 1, eta >= 2 and max_epochs >= 1; got "
            f"grace_epochs={grace_epochs}, eta={eta}, max_epochs={max_epochs}"
        )
    rungs = []
    epoch = grace_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= eta
    return rungs


def _rung_order(
    results: Mapping[int, Sequence[float]],
) -> list[tuple[tuple[float, ...], int, int]]:
    """(sort key, trial number, front) per result, best first; equal values give equal keys."""
    numbers = sorted(results)
    minimised = np.array([[-results[n][0], results[n][1]] for n in numbers], dtype=float)
    minimised = minimised.reshape(len(numbers), 2)
    finite = np.isfinite(minimised).all(axis=1)
    valid = np.flatnonzero(finite)
    order: list[tuple[tuple[float, ...], int, int]] = []
    if valid.size:
        values = minimised[valid]
        low, high = values.min(axis=0), values.max(axis=0)
        # A flat objective (all equal) contributes no spread rather than a division by zero.
        normalised = (values - low) / np.where(high > low, high - low, 1.0)
        # Sort fronts on the raw values: normalising can round distinct values together.
        for front_index, front in enumerate(non_dominated_sort(values), start=1):
            contribution = hypervolume_contribution(normalised[front])
            for i, index in enumerate(front):
                # Larger contribution first, then the values (better SSIM, then lower MSE).
                key = (front_index, -round(contribution[i], 12), *values[index].tolist())
                order.append((key, numbers[valid[index]], front_index))
    last_front = (max(f for _, _, f in order) + 1) if order else 1
    for i in np.flatnonzero(~finite).tolist():
        order.append(((last_front, 0.0, math.inf, math.inf), numbers[i], last_front))
    # The trial number only orders the listing of exactly equal results, which share one fate.
    return sorted(order)


def rank_at_rung(results: Mapping[int, Sequence[float]]) -> list[RankedTrial]:
    """Order the results of one rung, `{trial_number: (ssim, mse)}`, best first.

    Order: Pareto front on (-ssim, mse); inside a front, larger hypervolume contribution on the
    rung's min-max normalised objectives; then better SSIM, then lower MSE. Results with a
    non-finite value come last. Exactly equal results are listed by trial number. Depends only
    on the mapping's contents, not on its order.
    """
    return [RankedTrial(number, front) for _, number, front in _rung_order(results)]


def rung_decision(
    trial_number: int, results: Mapping[int, Sequence[float]], eta: int
) -> RungDecision:
    """Judge `trial_number` (a key of `results`) against everything recorded at its rung.

    Never prunes while `len(results) < eta`, nor a trial on the rung's first front; otherwise
    prunes iff the trial ranks beyond `max(1, len(results) // eta)` in `rank_at_rung(results)`
    and does not tie exactly with the last trial kept. Renumbering the trials never changes
    which results are pruned.
    """
    order = _rung_order(results)
    rank = next(i for i, (_, number, _) in enumerate(order, start=1) if number == trial_number)
    key, _, front = order[rank - 1]
    n = len(order)
    keep = n if n < eta else max(1, n // eta)
    prune = front > 1 and rank > keep and key != order[keep - 1][0]
    return RungDecision(prune=prune, rank=rank, front=front, n=n, keep=keep)


def rung_results(
    trials: Sequence[optuna.trial.FrozenTrial], epoch: int
) -> dict[int, tuple[float, float]]:
    """Collect `{trial_number: (ssim, mse)}` at rung `epoch` from trials of any state.

    A trial that failed and was retried (its number is in another trial's `retry_history`,
    written by Optuna's RetryFailedTrialCallback) is skipped: the retry inherited its user
    attrs, so counting both would count one configuration twice. Null values read as NaN.
    """
    superseded = records.superseded_by_retries(t.system_attrs for t in trials)
    results = {}
    for trial in trials:
        value = records.read_rung_value(records.trial_attrs(trial), epoch)
        if value is not None and trial.number not in superseded:
            results[trial.number] = value
    return results


class RungSpread(NamedTuple):
    """Seed-to-seed SD of (SSIM, MSE) at one rung, and where it came from."""

    ssim: float
    mse: float
    source: str


def seed_spread(trials: Sequence[optuna.trial.FrozenTrial], epoch: int) -> RungSpread:
    """The study's own spread at rung `epoch`, pooled over its repeated configurations.

    Runs of one configuration (equal parameters, any state, each trial's own rung values) give
    `n - 1` degrees of freedom; with fewer than `MIN_SPREAD_DOF` in all, the recorded spread
    (`RECORDED_SEED_SD`) at that epoch stands in.
    """
    from search.configurations import configuration_key

    params = {t.number: t.params for t in trials}
    groups: dict[str, list[tuple[float, float]]] = {}
    for number, value in rung_results(trials, epoch).items():
        if all(math.isfinite(v) for v in value):
            groups.setdefault(configuration_key(params[number]), []).append(value)
    repeated = [np.array(g) for g in groups.values() if len(g) > 1]
    dof = sum(len(g) - 1 for g in repeated)
    if dof >= MIN_SPREAD_DOF:
        squares = sum(((g - g.mean(axis=0)) ** 2).sum(axis=0) for g in repeated)
        sd = np.sqrt(squares / dof)
        return RungSpread(float(sd[0]), float(sd[1]), f"this study's, {dof} degrees of freedom")
    index = min(epoch, len(RECORDED_SEED_SD["ssim"])) - 1
    return RungSpread(
        RECORDED_SEED_SD["ssim"][index],
        RECORDED_SEED_SD["mse"][index],
        "recorded by the pruning benchmark",
    )


def beaten_beyond_noise(
    trial_number: int,
    results: Mapping[int, Sequence[float]],
    spread: RungSpread,
    margin: float,
) -> list[int]:
    """The trials at the rung better than `trial_number` by > margin SDs in both objectives.

    A result with a NaN or infinite value is beaten by every finite one.
    """
    ssim, mse = results[trial_number]
    finite = math.isfinite(ssim) and math.isfinite(mse)
    return sorted(
        number
        for number, (s, m) in results.items()
        if number != trial_number
        and math.isfinite(s)
        and math.isfinite(m)
        and (not finite or (s > ssim + margin * spread.ssim and m < mse - margin * spread.mse))
    )


def beaten_in_best_case(
    point: Sequence[float],
    completed: Mapping[int, tuple[Sequence[float], Sequence[float]]],
    min_complete: int,
) -> list[int]:
    """The completed trials whose final values dominate `point`'s best case (see Envelope).

    `completed`: `{trial: ((ssim, mse) at the rung, (ssim, mse) at the end)}` for the trials
    that completed through this rung, finite values only. Empty (keep the trial) while fewer
    than `min_complete` are given. A non-finite `point` has no best case: every trial beats it.
    """
    if len(completed) < min_complete:
        return []
    if not all(math.isfinite(v) for v in point):
        return sorted(completed)
    gain_ssim = max(0.0, max(final[0] - rung[0] for rung, final in completed.values()))
    gain_mse = max(0.0, max(rung[1] - final[1] for rung, final in completed.values()))
    best_ssim, best_mse = point[0] + gain_ssim, point[1] - gain_mse
    return sorted(
        number
        for number, (_, (s, m)) in completed.items()
        if s >= best_ssim and m <= best_mse and (s > best_ssim or m < best_mse)
    )


def completed_through(
    trials: Sequence[optuna.trial.FrozenTrial], epoch: int
) -> dict[int, tuple[tuple[float, float], tuple[float, float]]]:
    """`{trial: (rung value, final values)}` of the COMPLETE trials with finite values at both."""
    at_rung = rung_results(trials, epoch)
    out = {}
    for trial in trials:
        if trial.state != optuna.trial.TrialState.COMPLETE or trial.number not in at_rung:
            continue
        rung, final = at_rung[trial.number], tuple(trial.values or ())
        if len(final) == 2 and all(math.isfinite(v) for v in (*rung, *final)):
            out[trial.number] = (rung, (float(final[0]), float(final[1])))
    return out


def prune_reason(
    study: optuna.Study,
    trial: optuna.Trial,
    epoch: int,
    ssim: float,
    mse: float,
    *,
    config: ParetoPrunerConfig,
    judge: bool = True,
) -> str | None:
    """Record this epoch's validation metrics if it is a rung; say why to prune, or None.

    At a rung, adds `{"<epoch>": [ssim, mse]}` to the trial's `rung_values` user attr (keeping
    earlier rungs; NaN/inf stored as null, which strict JSON readers such as the dashboard
    accept), then judges the trial against every trial in the storage with a value at that
    rung. Other epochs return None and touch no storage. With `judge=False` (designed trials)
    the values are recorded, to serve as references for others, and None is returned. Raising
    `optuna.TrialPruned` is the caller's job.
    """
    if epoch not in config.rungs:
        return None
    records.write_rung_value(trial, epoch, ssim, mse)
    if not judge:
        return None
    trials = study.get_trials(deepcopy=False)
    results = rung_results(trials, epoch)
    results[trial.number] = (float(ssim), float(mse))  # our own value, whatever the cache says
    decision = rung_decision(trial.number, results, config.eta)
    if not decision.prune:
        return None
    reason = (
        f"rank {decision.rank} of {decision.n} at rung {epoch} epochs "
        f"(front {decision.front}); kept top {decision.keep}"
    )
    if config.envelope_min_complete > 0:
        completed = completed_through(trials, epoch)
        beaters = beaten_in_best_case((ssim, mse), completed, config.envelope_min_complete)
        if not beaters:
            return None  # its best case, judged by what completed trials gained, may still win
        reason += (
            f"; even with the largest gains after this rung of the {len(completed)} completed "
            f"trials it stays behind trial {beaters[0]}"
        )
    if config.noise_margin > 0:
        spread = seed_spread(trials, epoch)
        beaten_by = beaten_beyond_noise(trial.number, results, spread, config.noise_margin)
        if not beaten_by:
            return None  # worse, but within the seed-to-seed noise: it may still win
        reason += (
            f"; trial {beaten_by[0]} beat it by more than {config.noise_margin:g} seed SD "
            f"(SSIM {spread.ssim:.4f}, MSE {spread.mse:.5f}; {spread.source})"
        )
    return reason
