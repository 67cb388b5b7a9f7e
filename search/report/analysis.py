"""Small numeric analyses on plain arrays: spread along the front, bins, PCA.

Each is a pure function testable with hand-made numbers; none knows about Optuna. The front
and the knee are `search.configurations`', the hypervolume `search.pareto`'s, where the study
and the pruner read them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.configurations import Configuration
from search.report import prose

MAX_SHOWN_FRONT = 8  # Pareto trials shown as reconstructions and learning curves
MAX_DISTINCT_VALUES = 12  # above this, a numeric axis is shown in quantile bins
N_BINS = 6


def spread_along_front(
    front: Sequence[Configuration], objective_index: int, limit: int
) -> list[Configuration]:
    """Up to `limit` front configurations evenly spaced in the order of one objective's mean."""
    ordered = sorted(front, key=lambda c: (c.mean[objective_index], c.key))
    if len(ordered) <= limit:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, limit)).astype(int))
    return [ordered[i] for i in picks]


def project_2d(z_mean: np.ndarray) -> tuple[np.ndarray, tuple[float, ...], str]:
    """Latent means in 2-D: as they are for k <= 2, else the first two principal components."""
    k = z_mean.shape[1]
    if k == 1:
        return (
            np.column_stack([z_mean[:, 0], np.zeros(len(z_mean))]),
            (),
            "the single latent coordinate",
        )
    if k == 2:
        return z_mean.copy(), (), "both latent coordinates, no projection"
    centred = z_mean - z_mean.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / max(float(np.sum(singular**2)), 1e-30)
    return (
        centred @ vt[:2].T,
        (float(explained[0]), float(explained[1])),
        f"PCA of the {k}-D latent means",
    )


def quantile_bins(
    xs: np.ndarray, geometric: bool = False
) -> list[tuple[str, float, np.ndarray]] | None:
    """Up to N_BINS equal-count bins of `xs` as (label "low-high", centre, member mask).

    None when `xs` has at most MAX_DISTINCT_VALUES distinct values (show them one by one).
    The centre is the median, or the geometric mean for a log-scaled positive axis.
    """
    if len(np.unique(xs)) <= MAX_DISTINCT_VALUES:
        return None
    edges = np.unique(np.quantile(xs, np.linspace(0, 1, N_BINS + 1)))
    keys = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(edges) - 2)
    bins = []
    for key in np.unique(keys):
        members = keys == key
        inside = xs[members]
        if geometric and np.all(inside > 0):
            centre = float(np.exp(np.mean(np.log(inside))))
        else:
            centre = float(np.median(inside))
        low, high = prose.fmt_number(float(edges[key])), prose.fmt_number(float(edges[key + 1]))
        bins.append((f"{low}-{high}", centre, members))
    return bins
