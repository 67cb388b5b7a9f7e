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

Designed trials (anything enqueued) are judged by no rule here: the objective records their
rung values (they serve as references for sampled trials) and never prunes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import optuna
from numpy.typing import ArrayLike

RUNG_VALUES_ATTR = "rung_values"


@dataclass(frozen=True)
class ParetoPrunerConfig:
    """When to judge trials: rungs at `grace_epochs * eta**i` epochs below `max_epochs`."""

    max_epochs: int
    grace_epochs: int = 1
    eta: int = 3

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


def non_dominated_sort(points: ArrayLike) -> list[list[int]]:
    """Split point indices into Pareto fronts, best first, each front's indices ascending.

    All objectives are minimised. `a` dominates `b` iff `a` is no worse in every objective and
    strictly better in at least one, so equal points share a front. Points must be finite
    (ValueError otherwise): NaN compares false both ways and would land on the first front.
    """
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return []
    if p.ndim != 2 or not np.isfinite(p).all():
        raise ValueError("non_dominated_sort needs a 2-D array of finite values")
    no_worse = (p[:, None, :] <= p[None, :, :]).all(axis=2)
    better = (p[:, None, :] < p[None, :, :]).any(axis=2)
    dominates = np.logical_and(no_worse, better)  # dominates[i, j]: point i dominates point j
    dominated_by = dominates.sum(axis=0)
    placed = np.zeros(len(p), dtype=bool)
    fronts = []
    while not placed.all():
        front = np.flatnonzero((dominated_by == 0) & ~placed)
        fronts.append(front.tolist())
        placed[front] = True
        dominated_by = dominated_by - dominates[front].sum(axis=0)
    return fronts


# The hypervolume reference point in rung-normalised coordinates (every finite result lies in
# [0, 1]): a little beyond the worst value, so the rung's extreme points contribute too.
REFERENCE = 1.1


def hypervolume_contribution(points: ArrayLike) -> list[float]:
    """Exclusive 2-D hypervolume of each point of one front (minimised, normalised objectives).

    The area only that point dominates, bounded by `REFERENCE`: losing the point loses that much
    hypervolume. Equal points are treated as one point and share its contribution, so the result
    does not depend on the order of `points`.
    """
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return []
    unique, inverse = np.unique(p, axis=0, return_inverse=True)
    # np.unique sorts rows by the first objective; on one front the second then descends.
    xs, ys = unique[:, 0], unique[:, 1]
    right = np.append(xs[1:], REFERENCE)
    above = np.insert(ys[:-1], 0, REFERENCE)
    contribution = (right - xs) * (above - ys)
    return contribution[inverse.reshape(-1)].tolist()


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
    superseded = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    results = {}
    for trial in trials:
        value = trial.user_attrs.get(RUNG_VALUES_ATTR, {}).get(str(epoch))
        if value is not None and trial.number not in superseded:
            results[trial.number] = (_from_json(value[0]), _from_json(value[1]))
    return results


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
    recorded = dict(trial.user_attrs.get(RUNG_VALUES_ATTR, {}))
    recorded[str(epoch)] = [_to_json(ssim), _to_json(mse)]
    trial.set_user_attr(RUNG_VALUES_ATTR, recorded)
    if not judge:
        return None
    results = rung_results(study.get_trials(deepcopy=False), epoch)
    results[trial.number] = (float(ssim), float(mse))  # our own value, whatever the cache says
    decision = rung_decision(trial.number, results, config.eta)
    if not decision.prune:
        return None
    return (
        f"rank {decision.rank} of {decision.n} at rung {epoch} epochs "
        f"(front {decision.front}); kept top {decision.keep}"
    )


def _to_json(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _from_json(value: Any) -> float:
    return math.nan if value is None else float(value)
