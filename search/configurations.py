"""Configurations: trials with identical parameters, read as one thing measured several times.

The statistics contract (docs/statistics.md): a *configuration* is a parameter set; a *trial* is
one training of it under one seed, one draw. Fronts, the recommendation, effect charts and the
hypervolume speak of configurations, by their mean over seeds, with n and the spread; the
seed-to-seed spread pooled over every repeated configuration decides what is a difference.

Everything here is plain data in, plain data out: `Run`s are built by the study (from Optuna
trials) and by the report (from its trial records), so both judge with the same rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.pareto import minimised, non_dominated

# Two means differ when they are further apart than this many standard errors of their
# difference; the quantile comes from Student's t with the pooled degrees of freedom (two-sided
# 95%), so few repeats ask for a larger gap than many.
CONFIDENCE = 0.95
# At most this many front configurations get confirmation runs (those nearest the knee first):
# on a wide front, confirming every point would cost more than the search itself.
MAX_CONFIRMED = 5


@dataclass(frozen=True)
class Run:
    """One completed trial: its number, parameters and objective values in study order."""

    number: int
    params: Mapping[str, Any]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Configuration:
    """A parameter set with the runs measured for it (trial numbers ascending)."""

    key: str
    params: dict[str, Any]
    numbers: tuple[int, ...]
    runs: tuple[tuple[float, ...], ...]

    @property
    def n(self) -> int:
        return len(self.numbers)

    @property
    def first(self) -> int:
        """The trial that first measured it (for a sampled configuration: the selected run)."""
        return self.numbers[0]

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in np.mean(np.array(self.runs), axis=0))

    @property
    def sd(self) -> tuple[float, ...] | None:
        """Sample standard deviation over seeds (ddof 1), None with a single run."""
        if self.n < 2:
            return None
        return tuple(float(v) for v in np.std(np.array(self.runs), axis=0, ddof=1))


@dataclass(frozen=True)
class Noise:
    """Seed-to-seed spread pooled over the repeated configurations, per objective."""

    sd: tuple[float, ...]
    dof: int
    n_configs: int
    n_runs: int

    def threshold(self, n_a: int, n_b: int, objective: int) -> float:
        """Smallest difference of two means (of n_a and n_b runs) that counts as real."""
        return t_quantile(self.dof) * self.sd[objective] * math.sqrt(1 / n_a + 1 / n_b)


def configuration_key(params: Mapping[str, Any]) -> str:
    """Canonical text of a parameter set: equal parameters give equal keys.

    Floats are rounded to 12 significant digits so that a value that went through storage
    (JSON, a database column) still matches the value that was enqueued.
    """

    def canonical(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            number = float(value)
            if number.is_integer():
                return int(number)  # 4 and 4.0 are one configuration
            return float(f"{number:.12g}")
        return str(value)

    return json.dumps({k: canonical(v) for k, v in params.items()}, sort_keys=True)


def group_runs(runs: Iterable[Run]) -> list[Configuration]:
    """One Configuration per distinct parameter set, ordered by its first trial number."""
    grouped: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.number):
        grouped.setdefault(configuration_key(run.params), []).append(run)
    return [
        Configuration(
            key=key,
            params=dict(members[0].params),
            numbers=tuple(r.number for r in members),
            runs=tuple(tuple(float(v) for v in r.values) for r in members),
        )
        for key, members in grouped.items()
    ]


def pooled_noise(configurations: Sequence[Configuration]) -> Noise | None:
    """Pooled within-configuration SD over every configuration with at least two runs.

    None when nothing was repeated: then the study knows nothing of its noise and may make
    no directional claim.
    """
    repeated = [c for c in configurations if c.n >= 2]
    if not repeated:
        return None
    dof = sum(c.n - 1 for c in repeated)
    squares = sum(np.sum((np.array(c.runs) - np.array(c.mean)) ** 2, axis=0) for c in repeated)
    return Noise(
        sd=tuple(float(v) for v in np.sqrt(np.asarray(squares) / dof)),
        dof=dof,
        n_configs=len(repeated),
        n_runs=sum(c.n for c in repeated),
    )


def t_quantile(dof: int) -> float:
    """Two-sided `CONFIDENCE` quantile of Student's t with `dof` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, max(dof, 1)))


def losses(configurations: Sequence[Configuration], maximize: Sequence[bool]) -> np.ndarray:
    """(n, m) mean values with maximised objectives negated: lower is better everywhere."""
    return minimised([c.mean for c in configurations], maximize)


def pareto_front(
    configurations: Sequence[Configuration], maximize: Sequence[bool]
) -> list[Configuration]:
    """The configurations whose mean no other configuration's mean dominates."""
    keep = non_dominated(losses(configurations, maximize))
    return [c for c, kept in zip(configurations, keep, strict=True) if kept]


@dataclass(frozen=True)
class Choice:
    """The recommended configuration and, in words, how it was chosen."""

    configuration: Configuration
    method: str
    has_knee: bool


def _distance_to_ideal(points: np.ndarray, scale_over: np.ndarray) -> np.ndarray:
    low = scale_over.min(axis=0)
    span = scale_over.max(axis=0) - low
    span[span == 0] = 1.0
    return np.asarray(np.linalg.norm((points - low) / span, axis=1))


def _order_key(configuration: Configuration, distance: float) -> tuple[float, int, str]:
    # Nearest first; an exact tie goes to the better-measured configuration, then to the
    # parameter text: never to the trial number, which only says who arrived first.
    return (round(distance, 12), -configuration.n, configuration.key)


def rank_by_knee(
    front: Sequence[Configuration],
    maximize: Sequence[bool],
    everything: Sequence[Configuration] | None = None,
) -> list[Configuration]:
    """Front configurations, nearest the ideal point first (see `choose`)."""
    if not front:
        return []
    points = losses(front, maximize)
    scale = points if len(front) >= 3 or not everything else losses(everything, maximize)
    distances = _distance_to_ideal(points, scale)
    order = sorted(range(len(front)), key=lambda i: _order_key(front[i], float(distances[i])))
    return [front[i] for i in order]


def choose(
    front: Sequence[Configuration],
    maximize: Sequence[bool],
    everything: Sequence[Configuration],
) -> Choice | None:
    """Recommend one configuration of the front (means), and say how.

    Three or more configurations: the knee, the one nearest the ideal point after scaling each
    objective to [0, 1] over the front. With one or two there is no knee: one is simply
    chosen; of two, the one nearer the ideal point when each objective is scaled over all
    measured configurations (each of the two is better in one objective, so this asks which
    advantage is the larger part of the range the study saw).
    """
    if not front:
        return None
    ranked = rank_by_knee(front, maximize, everything)
    if len(front) == 1:
        method = "the only configuration on the Pareto front (there is no knee to find)"
    elif len(front) == 2:
        method = (
            "two configurations on the front, so there is no knee; of the two, the one nearer "
            "the ideal point when each objective is scaled to [0, 1] over all "
            f"{len(everything)} measured configurations"
        )
    else:
        method = (
            "the knee of the Pareto front: the configuration whose mean lies nearest the ideal "
            "point after scaling each objective to [0, 1] over the front"
        )
    return Choice(ranked[0], method, has_knee=len(front) >= 3)


def indistinguishable(
    chosen: Configuration, configurations: Sequence[Configuration], noise: Noise | None
) -> list[Configuration]:
    """The other configurations whose mean is within the noise threshold of `chosen`'s mean in
    every objective: at this budget the study cannot say that `chosen` is better than them.

    Empty without a noise estimate (then no difference can be judged at all).
    """
    if noise is None:
        return []
    return [
        other
        for other in configurations
        if other.key != chosen.key
        and all(
            abs(other.mean[i] - chosen.mean[i]) <= noise.threshold(other.n, chosen.n, i)
            for i in range(len(chosen.mean))
        )
    ]


def confirmation_plan(
    configurations: Sequence[Configuration],
    maximize: Sequence[bool],
    repeats: int,
    cap: int = MAX_CONFIRMED,
) -> list[tuple[Configuration, int]]:
    """Front configurations that need more seeds, with how many runs each still needs.

    A configuration is confirmed with `1 + repeats` runs. At most `cap` configurations, those
    nearest the knee first.
    """
    if repeats < 1:
        return []
    front = pareto_front(configurations, maximize)
    ranked = rank_by_knee(front, maximize, configurations)[:cap]
    return [(c, 1 + repeats - c.n) for c in ranked if c.n < 1 + repeats]
