"""The pruning rules bench_pruning.py compares, each in memory over one replayed study.

Every rule ranks with the product's own `search.pruning.rung_decision` (Pareto fronts, then
hypervolume contribution, equal values sharing one fate); they differ in when they judge and
in what more they ask before stopping a trial. A rule sees trials one at a time, in order, as
one `run` worker does: `stop(trial, epoch, (ssim, mse))` after every epoch, `completed(trial,
values)` when a trial finishes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.pruning import (
    RungSpread,
    beaten_beyond_noise,
    beaten_in_best_case,
    rung_decision,
    rung_epochs,
)

Point = tuple[float, float]  # (ssim, mse)


class PruningRule:
    name = "none"
    pauses = False  # freeze-thaw: a stopped trial is paused and may be resumed (`resumable`)

    def fresh(self) -> PruningRule:
        """The same rule with no history (one per replayed study)."""
        return type(self)(**self.settings())

    def settings(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"rule": self.name, **self.settings()}

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        return False

    def study_pruner(self) -> Any:
        """The Optuna pruner the replayed study is created with (None: Optuna's default, which
        a multi-objective study never consults)."""
        return None

    def for_trial(self, trial: Any, number: int) -> Any:
        """`judge(epoch, point) -> stop?` for one trial (`trial`: the live Optuna trial)."""
        return lambda epoch, point: self.stop(number, epoch, point)

    def completed(self, trial: int, values: Point) -> None:
        pass

    def resumable(self, paused: dict[int, int]) -> list[int]:
        """The paused trials (`{trial: epoch paused at}`) to resume now, in order."""
        return []


class NoPruning(PruningRule):
    pass


class RungRule(PruningRule):
    """`run`'s rule: rungs at grace * eta**i epochs, keep the first front and the top 1/eta."""

    def __init__(self, max_epochs: int, grace: int, eta: int) -> None:
        self.max_epochs, self.grace, self.eta = max_epochs, grace, eta
        self.rungs = rung_epochs(grace, eta, max_epochs)
        self.name = f"rung g{grace} eta{eta}"
        self.at_rung: dict[int, dict[int, Point]] = {r: {} for r in self.rungs}

    def settings(self) -> dict[str, Any]:
        return {"max_epochs": self.max_epochs, "grace": self.grace, "eta": self.eta}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rungs": self.rungs}

    def judge(self, trial: int, epoch: int, point: Point) -> bool:
        """The rung rule's verdict, recording the point (kept whatever the verdict)."""
        results = self.at_rung[epoch]
        results[trial] = point
        return rung_decision(trial, results, self.eta).prune

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        return epoch in self.at_rung and self.judge(trial, epoch, point)

    def keeps_now(self, trial: int, epoch: int) -> bool:
        """Whether the rule, with every result its rung `epoch` holds now, keeps `trial`."""
        return not rung_decision(trial, self.at_rung[epoch], self.eta).prune


class HyperbandRule(PruningRule):
    """Brackets of rung rules with first rungs grace * eta**b; trials dealt round-robin.

    Each bracket ranks its own trials only (as Optuna's HyperbandPruner does), so the bracket
    with the latest first rung protects slow starters that the early brackets would stop.
    """

    def __init__(self, max_epochs: int, grace: int, eta: int) -> None:
        self.max_epochs, self.grace, self.eta = max_epochs, grace, eta
        self.brackets = []
        first = grace
        while first < max_epochs:
            self.brackets.append(RungRule(max_epochs, first, eta))
            first *= eta
        self.name = f"hyperband g{grace} eta{eta} ({len(self.brackets)} brackets)"

    def settings(self) -> dict[str, Any]:
        return {"max_epochs": self.max_epochs, "grace": self.grace, "eta": self.eta}

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        return self.brackets[trial % len(self.brackets)].stop(trial, epoch, point)


class NoiseRule(RungRule):
    """`run`'s rule with a noise margin: the rung rule, but a trial stops only if another trial
    at the rung beats it by more than `margin` seed SDs (at that epoch) in both SSIM and MSE
    (`search.pruning.beaten_beyond_noise`). The SDs are given: measured on the tuning seeds."""

    def __init__(
        self,
        max_epochs: int,
        grace: int,
        eta: int,
        margin: float,
        sd_ssim: Sequence[float],
        sd_mse: Sequence[float],
    ) -> None:
        super().__init__(max_epochs, grace, eta)
        self.margin, self.sd_ssim, self.sd_mse = margin, list(sd_ssim), list(sd_mse)
        self.name = f"noise g{grace} eta{eta} {margin:g}sd"

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "margin": self.margin,
            "sd_ssim": self.sd_ssim,
            "sd_mse": self.sd_mse,
        }

    def describe(self) -> dict[str, Any]:
        return {"rule": self.name, "grace": self.grace, "eta": self.eta, "margin_sd": self.margin}

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        if epoch not in self.at_rung or not self.judge(trial, epoch, point):
            return False
        return self.beaten(trial, epoch)

    def beaten(self, trial: int, epoch: int) -> bool:
        spread = RungSpread(self.sd_ssim[epoch - 1], self.sd_mse[epoch - 1], "tuning seeds")
        return bool(beaten_beyond_noise(trial, self.at_rung[epoch], spread, self.margin))

    def keeps_now(self, trial: int, epoch: int) -> bool:
        return super().keeps_now(trial, epoch) or not self.beaten(trial, epoch)


class EnvelopeRule(RungRule):
    """`run`'s rule with the envelope guard (`search.pruning.beaten_in_best_case`): the rung
    rule, but a trial stops only if even its best case (its rung values plus the largest gains
    completed trials made after the rung) is dominated by a completed trial's final values."""

    def __init__(self, max_epochs: int, grace: int, eta: int, min_complete: int) -> None:
        super().__init__(max_epochs, grace, eta)
        self.min_complete = min_complete
        self.name = f"envelope g{grace} eta{eta} min{min_complete}"
        self.finals: dict[int, Point] = {}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "min_complete": self.min_complete}

    def completed(self, trial: int, values: Point) -> None:
        self.finals[trial] = values

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        if epoch not in self.at_rung or not self.judge(trial, epoch, point):
            return False
        at_rung = self.at_rung[epoch]
        completed = {t: (at_rung[t], final) for t, final in self.finals.items() if t in at_rung}
        return bool(beaten_in_best_case(point, completed, self.min_complete))


# OptunaHub's multi-objective pruner, with the base pruners its README shows. Loaded from a
# local checkout of optuna/optunahub-registry (`--hub-registry`): never copied in here.
HUB_PACKAGE = "pruners/multi_metric_pruner"
HUB_BASES = ("median", "percentile", "successive_halving", "hyperband")
_HUB_MODULES: dict[str, Any] = {}


def hub_module(registry: str) -> Any:
    """The hub package, loaded once per process from `registry` (a registry checkout)."""
    if registry not in _HUB_MODULES:
        import optunahub

        # the registry keeps its packages under package/: that folder is optunahub's root
        root = os.path.join(registry, "package")
        _HUB_MODULES[registry] = optunahub.load_local_module(HUB_PACKAGE, registry_root=root)
    return _HUB_MODULES[registry]


class HubRule(PruningRule):
    """OptunaHub's MultiMetricPruner (joint mode: Pareto ranks per step) over an Optuna base
    pruner, driven as its README drives it: every epoch `report({...}, step)`, then
    `should_prune()`, on the replay's real Optuna study and trial."""

    def __init__(self, base: str, registry: str, max_epochs: int) -> None:
        self.base, self.registry, self.max_epochs = base, registry, max_epochs
        self.name = f"hub multi_metric_pruner + {base}"

    def settings(self) -> dict[str, Any]:
        return {"base": self.base, "registry": self.registry, "max_epochs": self.max_epochs}

    def describe(self) -> dict[str, Any]:
        return {"rule": self.name, "base": self.base, "package": HUB_PACKAGE}

    def study_pruner(self) -> Any:
        import optuna

        bases = {
            # n_startup_trials=3 as in the package's README example
            "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3),
            "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3),
            "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=self.max_epochs
            ),
        }
        return hub_module(self.registry).MultiMetricPruner(
            bases[self.base](),
            metric_directions={"ssim": "maximize", "mse": "minimize"},
            joint=True,
        )

    def for_trial(self, trial: Any, number: int) -> Any:
        wrapped = hub_module(self.registry).MultiMetricPrunerTrial(trial)

        def judge(epoch: int, point: Point) -> bool:
            wrapped.report({"ssim": point[0], "mse": point[1]}, epoch)
            return bool(wrapped.should_prune())

        return judge


# ---------------------------------------------------------------------------- issue 17, item 4


SHAPES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # the exponents c tried by `saturating_fit`


def saturating_fit(
    values: Sequence[float], sd: Sequence[float], horizon: int, increasing: bool, z: float
) -> float:
    """The optimistic end of a learning curve's value at epoch `horizon`, from its first
    epochs: fitted as y = a - b * t**-c (SSIM, `increasing`) or a + b * t**-c (MSE) with
    b >= 0, each epoch weighted by the seed-to-seed SD measured there (the observation model).
    For each exponent c in SHAPES the fit is weighted least squares in (a, b); the exponents
    whose chi-square is within z**2 of the best one's are admitted (a profile interval), and
    the result is the most optimistic of their predictions moved z SDs outwards, the SD being
    the fit's own and one more seed's spread at the horizon, in quadrature. NaN with fewer
    than 4 epochs (too few to tell the shape) or no admissible fit."""
    y = np.asarray(values, dtype=float)
    if len(y) < 4 or not np.isfinite(y).all():
        return math.nan
    t = np.arange(1, len(y) + 1, dtype=float)
    w = 1.0 / np.asarray(sd[: len(y)], dtype=float) ** 2
    sign = 1.0 if increasing else -1.0
    fits = []
    for c in SHAPES:
        x = np.column_stack([np.ones_like(t), -sign * t ** (-c)])
        precision = x.T @ (x * w[:, None])
        cov = np.linalg.inv(precision)
        a, b = cov @ (x.T @ (w * y))
        if b < 0:  # not saturating that way: the flat line instead
            a, b = float(np.sum(w * y) / np.sum(w)), 0.0
            cov = np.array([[1.0 / np.sum(w), 0.0], [0.0, 0.0]])
        chi2 = float(np.sum(w * (y - (a - sign * b * t ** (-c))) ** 2))
        at = np.array([1.0, -sign * float(horizon) ** (-c)])
        spread = math.sqrt(float(at @ cov @ at) + sd[horizon - 1] ** 2)
        fits.append((chi2, float(at @ np.array([a, b])), spread))
    best = min(f[0] for f in fits)
    ends = [pred + sign * z * spread for chi2, pred, spread in fits if chi2 <= best + z**2]
    return max(ends) if increasing else min(ends)


class ExtrapolationRule(PruningRule):
    """Learning-curve extrapolation: at epochs first, first + every, ... (below the last), fit
    the running trial's curve so far in both objectives (`saturating_fit`) and stop it only if
    the optimistic end of its predicted final values (SSIM + z SD, MSE - z SD) is dominated by
    a completed trial's final values, once `min_complete` trials have completed. z = inf never
    stops anything."""

    def __init__(
        self,
        max_epochs: int,
        first: int,
        every: int,
        z: float,
        min_complete: int,
        sd_ssim: Sequence[float],
        sd_mse: Sequence[float],
    ) -> None:
        self.max_epochs, self.first, self.every, self.z = max_epochs, first, every, z
        self.min_complete, self.sd_ssim, self.sd_mse = min_complete, list(sd_ssim), list(sd_mse)
        self.name = f"extrapolate from {first} every {every} z{z:g} min{min_complete}"
        self.curves: dict[int, list[Point]] = {}
        self.finals: dict[int, Point] = {}

    def settings(self) -> dict[str, Any]:
        return {
            "max_epochs": self.max_epochs,
            "first": self.first,
            "every": self.every,
            "z": self.z,
            "min_complete": self.min_complete,
            "sd_ssim": self.sd_ssim,
            "sd_mse": self.sd_mse,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "first": self.first,
            "every": self.every,
            "z": self.z,
            "min_complete": self.min_complete,
        }

    def completed(self, trial: int, values: Point) -> None:
        self.finals[trial] = values

    def optimistic_end(self, curve: Sequence[Point]) -> Point:
        m, z = self.max_epochs, self.z
        ssim = saturating_fit([p[0] for p in curve], self.sd_ssim, m, True, z)
        mse = saturating_fit([p[1] for p in curve], self.sd_mse, m, False, z)
        # never more pessimistic than what the curve already showed
        return max(ssim, max(p[0] for p in curve)), min(mse, min(p[1] for p in curve))

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        curve = self.curves.setdefault(trial, [])
        curve.append(point)
        if (
            math.isinf(self.z)
            or epoch < self.first
            or (epoch - self.first) % self.every
            or len(self.finals) < self.min_complete
        ):
            return False
        hi_s, lo_m = self.optimistic_end(curve)
        if not (math.isfinite(hi_s) and math.isfinite(lo_m)):
            return False
        return any(s > hi_s and m < lo_m for s, m in self.finals.values())


class PauseRule(PruningRule):
    """Freeze-thaw over a rung rule: a trial the rule stops is paused (its weights kept), and
    resumed (its own curve continued, its remaining epochs charged then) as soon as its rung
    turns out weaker than it looked: the rule, asked again with every result that rung has
    now, would keep it (`keeps_now`). The replay asks `resumable` before every new trial."""

    pauses = True

    def __init__(self, inner: RungRule) -> None:
        self.inner = inner
        self.name = f"pause-resume {inner.name}"

    def fresh(self) -> PruningRule:
        inner = self.inner.fresh()
        assert isinstance(inner, RungRule)
        return PauseRule(inner)

    def settings(self) -> dict[str, Any]:
        return {"inner": self.inner.describe()}

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "rule": self.name, "pause_resume": True}

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        return self.inner.stop(trial, epoch, point)

    def completed(self, trial: int, values: Point) -> None:
        self.inner.completed(trial, values)

    def resumable(self, paused: dict[int, int]) -> list[int]:
        """The paused trials (`{trial: epoch paused at}`) the rule would keep now."""
        return [t for t, epoch in sorted(paused.items()) if self.inner.keeps_now(t, epoch)]


def forecast_margins(
    ssim: np.ndarray,
    mse: np.ndarray,
    epochs: Sequence[int],
    sd_ssim: Sequence[float],
    sd_mse: Sequence[float],
    q: float,
) -> tuple[list[float], list[float]]:
    """Per judging epoch, the `q` quantile of how much the best `saturating_fit` (z = 0)
    under-forecast the final SSIM and over-forecast the final MSE, over the given curves
    (`[curve, epoch]`: the tuning seeds'): a prediction interval measured, not assumed."""
    m = ssim.shape[1]
    out_s, out_m = [], []
    for epoch in epochs:
        err_s = [c[-1] - saturating_fit(c[:epoch], sd_ssim, m, True, 0.0) for c in ssim]
        err_m = [saturating_fit(c[:epoch], sd_mse, m, False, 0.0) - c[-1] for c in mse]
        out_s.append(float(np.nanquantile(err_s, q)))
        out_m.append(float(np.nanquantile(err_m, q)))
    return out_s, out_m


class CalibratedExtrapolationRule(ExtrapolationRule):
    """`ExtrapolationRule` with measured intervals: the optimistic end is the best fit's
    forecast plus the `q` quantile of the forecast errors made on the tuning seeds' curves at
    that epoch (`forecast_margins`). q = inf never stops anything."""

    def __init__(
        self,
        max_epochs: int,
        first: int,
        every: int,
        q: float,
        min_complete: int,
        sd_ssim: Sequence[float],
        sd_mse: Sequence[float],
        margin_ssim: Sequence[float],
        margin_mse: Sequence[float],
    ) -> None:
        super().__init__(max_epochs, first, every, 0.0, min_complete, sd_ssim, sd_mse)
        self.q = q
        self.margin_ssim, self.margin_mse = list(margin_ssim), list(margin_mse)
        self.name = f"extrapolate, measured q{q:g}, from {first} every {every} min{min_complete}"

    def settings(self) -> dict[str, Any]:
        s = super().settings()
        s.pop("z")
        return {**s, "q": self.q, "margin_ssim": self.margin_ssim, "margin_mse": self.margin_mse}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.pop("z")
        return {**d, "rule": self.name, "q": self.q}

    def judging(self) -> list[int]:
        return list(range(self.first, self.max_epochs, self.every))

    def optimistic_end(self, curve: Sequence[Point]) -> Point:
        i = self.judging().index(len(curve))
        m = self.max_epochs
        ssim = saturating_fit([p[0] for p in curve], self.sd_ssim, m, True, 0.0)
        mse = saturating_fit([p[1] for p in curve], self.sd_mse, m, False, 0.0)
        hi_s, lo_m = ssim + self.margin_ssim[i], mse - self.margin_mse[i]
        return max(hi_s, max(p[0] for p in curve)), min(lo_m, min(p[1] for p in curve))

    def stop(self, trial: int, epoch: int, point: Point) -> bool:
        if math.isinf(self.q):
            self.curves.setdefault(trial, []).append(point)
            return False
        return super().stop(trial, epoch, point)
