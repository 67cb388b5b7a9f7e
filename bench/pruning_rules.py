"""The pruning rules bench_pruning.py compares, each in memory over one replayed study.

Every rule ranks with the product's own `search.pruning.rung_decision` (Pareto fronts, then
hypervolume contribution, equal values sharing one fate); they differ in when they judge and
in what more they ask before stopping a trial. A rule sees trials one at a time, in order, as
one `run` worker does: `stop(trial, epoch, (ssim, mse))` after every epoch, `completed(trial,
values)` when a trial finishes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

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
        spread = RungSpread(self.sd_ssim[epoch - 1], self.sd_mse[epoch - 1], "tuning seeds")
        return bool(beaten_beyond_noise(trial, self.at_rung[epoch], spread, self.margin))


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
