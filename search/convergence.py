"""When to stop: the trial after which the seed-mean front stopped moving beyond the seed noise.

A study-level rule, plain data in and out (the run, the report and bench/bench_convergence.py
call the same function). The front after trial k is the Pareto front of configuration means
(search/configurations.py) over the completed trials numbered up to k. A later front *moved*
beyond the noise when one of its configurations beats every configuration of the earlier front
by more than the noise threshold (configurations.Noise.threshold, the smallest difference of
two means that counts as real) in at least one objective: a gain the noise could not explain.

The front *stopped moving* at the earliest finished trial m such that no later front moved
beyond the noise against the front after m. The study has *converged* once `window` or more
finished trials (completed or pruned: each was a sampled chance to move the front) came after
m. The noise is the study's own, pooled over its repeated configurations; a study that repeated
nothing borrows the seed spread the pruning benchmark recorded (search/pruning.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search import configurations as configs
from search.pruning import RECORDED_SEED_SD

# Degrees of freedom of the recorded spread: 48 configurations under 2 tuning seeds.
RECORDED_DOF = 48


@dataclass(frozen=True)
class Convergence:
    """Where the front stopped moving (`stopped_at`, a trial number; None before any completed
    trial), over how many finished trials, and whether `window` of them came after it."""

    stopped_at: int | None
    finished: int
    trials_since: int
    window: int
    noise_source: str

    @property
    def converged(self) -> bool:
        return self.stopped_at is not None and self.trials_since >= self.window


def study_noise(
    configurations: Sequence[configs.Configuration], epochs: int
) -> tuple[configs.Noise, str]:
    """The study's pooled seed noise, or the recorded spread after `epochs` epochs, and which."""
    noise = configs.pooled_noise(configurations)
    if noise is not None:
        return noise, f"this study's, {noise.dof} degrees of freedom"
    index = min(max(epochs, 1), len(RECORDED_SEED_SD["ssim"])) - 1
    recorded = configs.Noise(
        sd=(RECORDED_SEED_SD["ssim"][index], RECORDED_SEED_SD["mse"][index]),
        dof=RECORDED_DOF,
        n_configs=0,
        n_runs=0,
    )
    return recorded, "recorded by the pruning benchmark"


def moved(
    before: Sequence[configs.Configuration],
    after: Sequence[configs.Configuration],
    noise: configs.Noise,
    maximize: Sequence[bool],
) -> bool:
    """Does a configuration of the front `after` beat every configuration of the front `before`
    by more than the noise threshold in at least one objective?"""
    if not after:
        return False
    if not before:
        return True
    old, new = configs.losses(before, maximize), configs.losses(after, maximize)
    scale = configs.t_quantile(noise.dof) * np.asarray(noise.sd)
    n_old = np.array([o.n for o in before], dtype=float)
    for j, c in enumerate(after):
        gaps = old - new[j]  # (old points, objectives); > 0: the new point is better there
        margins = scale[None, :] * np.sqrt(1 / n_old + 1 / c.n)[:, None]
        # beaten beyond the noise in one objective or more, by this new point: every old one
        if np.all(np.any(gaps > margins, axis=1)):
            return True
    return False


def fronts_by_trial(
    runs: Sequence[configs.Run], finished: Sequence[int], maximize: Sequence[bool]
) -> list[list[configs.Configuration]]:
    """The front of means after each finished trial (in `finished`'s ascending order)."""
    ordered = sorted(runs, key=lambda r: r.number)
    fronts, seen = [], 0
    for number in sorted(finished):
        while seen < len(ordered) and ordered[seen].number <= number:
            seen += 1
        fronts.append(configs.pareto_front(configs.group_runs(ordered[:seen]), maximize))
    return fronts


def convergence(
    runs: Sequence[configs.Run],
    finished: Sequence[int],
    window: int,
    maximize: Sequence[bool],
    noise: configs.Noise,
    noise_source: str = "",
    look_back: int | None = None,
) -> Convergence:
    """Where the front stopped moving, for completed `runs` among the `finished` trial numbers.

    Walks back from the last finished trial: the front after trial m counts as settled while no
    later front moved beyond the noise against it; the earliest such m is where it stopped.
    With `look_back`, the walk goes at most that many trials back: enough to tell whether a
    window of that size has passed, and cheaper, but `stopped_at` is then no earlier.
    """
    numbers = sorted(set(finished) | {r.number for r in runs})
    fronts = fronts_by_trial(runs, numbers, maximize)
    stopped = settled_since(fronts, noise, maximize, look_back)
    return Convergence(
        stopped_at=None if stopped is None else numbers[stopped],
        finished=len(numbers),
        trials_since=0 if stopped is None else len(numbers) - 1 - stopped,
        window=window,
        noise_source=noise_source,
    )


def settled_since(
    fronts: Sequence[Sequence[configs.Configuration]],
    noise: configs.Noise,
    maximize: Sequence[bool],
    look_back: int | None = None,
) -> int | None:
    """Index of the earliest front that no later front moved beyond the noise against, in an
    unbroken run back from the last one; None when the last front is empty. `look_back` stops
    the walk after that many steps back (enough to decide a window of `look_back`)."""
    stopped = None
    last = len(fronts) - 1
    lowest = 0 if look_back is None else max(0, last - look_back)
    for m in range(last, lowest - 1, -1):
        if not fronts[m]:
            break
        if any(moved(fronts[m], fronts[k], noise, maximize) for k in range(m + 1, last + 1)):
            break
        stopped = m
    return stopped


def as_record(result: Convergence) -> dict[str, object]:
    """Plain data for the study record (search/records: write_convergence)."""
    return {
        "stopped_at": result.stopped_at,
        "finished": result.finished,
        "trials_since": result.trials_since,
        "window": result.window,
        "converged": result.converged,
        "noise": result.noise_source,
    }


def from_record(record: Mapping[str, Any] | None) -> Convergence | None:
    """The stored record (records.read_convergence) back as a Convergence; None if unusable."""
    if not record:
        return None
    stopped, finished = record.get("stopped_at"), record.get("finished")
    since, window = record.get("trials_since"), record.get("window")
    numbers = (finished, since, window)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        return None
    if stopped is not None and (not isinstance(stopped, int) or isinstance(stopped, bool)):
        return None
    return Convergence(stopped, finished, since, window, str(record.get("noise")))  # type: ignore[arg-type]


def sentence(result: Convergence) -> str:
    """One line for the run log and the report."""
    if result.stopped_at is None:
        return "convergence: no completed trial yet, so no front to watch"
    state = (
        f"converged: {result.trials_since} finished trials since (window {result.window})"
        if result.converged
        else f"not converged: {result.trials_since} finished trials since, window {result.window}"
    )
    return (
        f"convergence: the seed-mean front stopped moving beyond the seed noise at trial "
        f"{result.stopped_at}; {state}; noise {result.noise_source}"
    )
