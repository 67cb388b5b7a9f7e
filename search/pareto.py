"""Pareto dominance, non-dominated sorting and 2-D hypervolume: the one implementation.

The pruner (rung ranking), the configurations (front of means), the report (hypervolume over
time) and the pruning benchmark all call these functions, so they agree by construction. Every
function minimises every objective; `minimised` turns values with maximised objectives (SSIM)
into losses first.

Why moocore (https://multi-objective.github.io/moocore/python/): it is made for this work
(hypervolume, non-dominated sorting, attainment surfaces), actively maintained, and its C code
is exact where ours was a Python loop. Its 2-D hypervolume agreed bit for bit with the loop it
replaced on 2,000 random point sets (rounded and not, points beyond the reference included),
and `pareto_rank` peels fronts as our sort did, equal points sharing a front.

What stays ours, and why: the dominance of one point by a set (`dominated_by_any`) is one
numpy comparison, needs no sorting, and must treat NaN as "not better"; the exclusive
contribution of each point of one front (`hypervolume_contribution`) has a closed form in 2-D
whose result does not depend on the order of the points, and equal points share one
contribution, which moocore's `hv_contributions` (each duplicate contributes 0) does not do.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import ArrayLike


def minimised(points: ArrayLike, maximize: Sequence[bool]) -> np.ndarray:
    """(n, m) float array with the maximised objectives negated: lower is better everywhere."""
    signs = np.array([-1.0 if m else 1.0 for m in maximize])
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        return np.zeros((0, len(maximize)))
    return p.reshape(-1, len(maximize)) * signs


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """Does `a` dominate `b`: no worse in every objective and strictly better in one?"""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(x <= y) and np.any(x < y))


def dominated_by_any(
    point: ArrayLike, others: ArrayLike, maximize: Sequence[bool] | None = None
) -> bool:
    """Is `point` dominated by at least one row of `others`?

    All objectives are minimised unless `maximize` says which are maximised (then both are
    given as measured, e.g. `(ssim, mse)` with `maximize=(True, False)`). A NaN compares
    false both ways, so it neither dominates nor is dominated.
    """
    if maximize is not None:
        point = minimised(np.asarray(point, dtype=np.float64)[None, :], maximize)[0]
        others = minimised(others, maximize)
    p = np.asarray(point, dtype=np.float64)
    o = np.asarray(others, dtype=np.float64).reshape(-1, p.size)
    return bool(np.any(np.all(o <= p, axis=1) & np.any(o < p, axis=1)))


def non_dominated(points: ArrayLike) -> np.ndarray:
    """Boolean mask of the points no other point dominates; equal points are all kept."""
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(p, keep_weakly=True), dtype=bool)


def non_dominated_sort(points: ArrayLike) -> list[list[int]]:
    """Split point indices into Pareto fronts, best first, each front's indices ascending.

    `a` dominates `b` iff `a` is no worse in every objective and strictly better in at least
    one, so equal points share a front. Points must be finite (ValueError otherwise): NaN
    compares false both ways and would land on the first front.
    """
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return []
    if p.ndim != 2 or not np.isfinite(p).all():
        raise ValueError("non_dominated_sort needs a 2-D array of finite values")
    ranks = np.asarray(moocore.pareto_rank(p))
    return [np.flatnonzero(ranks == r).tolist() for r in np.unique(ranks)]


def hypervolume_2d(losses: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by two-objective minimisation points, bounded by `reference`.

    Points not strictly better than the reference in both objectives add nothing.
    """
    points = np.asarray(losses, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=np.asarray(reference, dtype=np.float64)))


# The reference point for objectives min-max normalised over the points judged (every finite
# point lies in [0, 1]): a little beyond the worst value, so the extreme points contribute too.
NORMALISED_REFERENCE = 1.1


def hypervolume_contribution(
    points: ArrayLike, reference: float = NORMALISED_REFERENCE
) -> list[float]:
    """Exclusive 2-D hypervolume of each point of one front (minimised objectives).

    The area only that point dominates, bounded by `reference` in both objectives: losing the
    point loses that much hypervolume. Equal points are treated as one point and share its
    contribution, so the result does not depend on the order of `points`.
    """
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return []
    unique, inverse = np.unique(p, axis=0, return_inverse=True)
    # np.unique sorts rows by the first objective; on one front the second then descends.
    xs, ys = unique[:, 0], unique[:, 1]
    right = np.append(xs[1:], reference)
    above = np.insert(ys[:-1], 0, reference)
    contribution = (right - xs) * (above - ys)
    return list(contribution[inverse.reshape(-1)].tolist())
