"""The search space and one-factor sweeps, defined in one place (presets: search/defaults.py).

The space is a dict of Optuna distributions; it is stored with the study (as JSON) so that a
resumed run and the report know exactly what was searched.
"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search import records
from search.defaults import LOSS_CHOICES, PARAM_LIMITS, SWEEP_BASELINE
from search.errors import UsageError

SearchSpace = dict[str, BaseDistribution]


def default_space() -> SearchSpace:
    return {
        "latent_dim": IntDistribution(1, 32),  # k
        "n_layers": IntDistribution(1, 4),  # l (conv layers; the decoder mirrors them)
        "filters": CategoricalDistribution([8, 16, 32, 64]),
        "dense_units": CategoricalDistribution([16, 32, 64, 128, 256]),
        "loss": CategoricalDistribution(["bce", "mse"]),
        "beta": FloatDistribution(0.25, 4.0, log=True),
    }


def param_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be the model parameter `name` (None when it can)."""
    if name == "loss":
        return None if value in LOSS_CHOICES else f"loss must be one of {', '.join(LOSS_CHOICES)}"
    low, high = PARAM_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} must be a number"
    if not math.isfinite(value) or not low <= value <= high:
        return f"{name} must be within {low:g}..{high:g}"
    if name != "beta" and value != int(value):
        return f"{name} must be a whole number"
    return None


def suggest_params(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask the trial for one value of every parameter in the space."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:  # pragma: no cover - only the three kinds above are ever built
            raise TypeError(f"unsupported distribution for {name}: {dist!r}")
    return params


def space_to_json(space: SearchSpace) -> dict[str, str]:
    return {name: optuna.distributions.distribution_to_json(d) for name, d in space.items()}


def space_from_json(stored: dict[str, str]) -> SearchSpace:
    return {name: optuna.distributions.json_to_distribution(d) for name, d in stored.items()}


def describe_space(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """Plain description (for study user attrs and the report)."""
    described: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            described[name] = {"type": "categorical", "choices": list(dist.choices)}
        elif isinstance(dist, IntDistribution | FloatDistribution):
            kind = "int" if isinstance(dist, IntDistribution) else "float"
            described[name] = {
                "type": kind,
                "low": dist.low,
                "high": dist.high,
                "log": dist.log,
                "step": dist.step,
            }
    return described


def _parse_value(text: str) -> Any:
    """A number (finite), or the text itself (a bare word such as bce).

    json.loads would also turn `NaN`, `Infinity`, `1e999`, `[1]` or `null` into values no
    distribution can hold; those stay text here and are refused by the parameter check.
    """
    text = text.strip()
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError):
        return text
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text
    return value if math.isfinite(value) else text


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def parse_space_override(spec: str, space: SearchSpace) -> SearchSpace:
    """`latent_dim=1:16` (int/float range) or `loss=bce,mse` (choices) replaces one dimension."""
    name, sep, rest = spec.partition("=")
    if not sep or name not in space or not rest:
        raise UsageError(
            f"bad --space {spec!r}: expected NAME=LOW:HIGH or NAME=A,B,... with NAME one of "
            f"{', '.join(space)}"
        )
    old = space[name]
    if ":" in rest:
        low_text, _, high_text = rest.partition(":")
        low, high = _parse_value(low_text), _parse_value(high_text)
        if isinstance(old, CategoricalDistribution) or not all(
            isinstance(v, int | float) for v in (low, high)
        ):
            raise UsageError(
                f"bad --space {spec!r}: a range needs finite numbers and a numeric parameter"
            )
        problem = param_problem(name, low) or param_problem(name, high)
        if problem:
            raise UsageError(f"bad --space {spec!r}: {problem}")
        if low > high:
            raise UsageError(f"bad --space {spec!r}: need LOW <= HIGH")
        if getattr(old, "log", False) and low <= 0:
            raise UsageError(f"bad --space {spec!r}: {name} is searched on a log scale, LOW > 0")
        new: BaseDistribution
        if isinstance(old, IntDistribution):
            if low != int(low) or high != int(high):
                raise UsageError(f"bad --space {spec!r}: {name} takes integers")
            new = IntDistribution(int(low), int(high), log=old.log)
        else:
            new = FloatDistribution(float(low), float(high), log=getattr(old, "log", False))
    else:
        choices = [_parse_value(v) for v in rest.split(",")]
        for choice in choices:
            problem = param_problem(name, choice)
            if problem:
                raise UsageError(f"bad --space {spec!r}: {choice!r}: {problem}")
        if len(set(choices)) != len(choices):
            raise UsageError(f"bad --space {spec!r}: a choice is given twice")
        new = CategoricalDistribution(choices)
    return {**space, name: new}


def parse_sweep(spec: str, space: SearchSpace) -> tuple[str, list[Any]]:
    """`latent_dim=1,2,4,6,8,10` -> ("latent_dim", [1, 2, 4, 6, 8, 10]), each value checked."""
    name, sep, rest = spec.partition("=")
    if not sep or not rest or name not in space:
        raise UsageError(
            f"bad --sweep {spec!r}: expected NAME=V1,V2,... with NAME one of {', '.join(space)}"
        )
    values = [_parse_value(v.strip()) for v in rest.split(",") if v.strip()]
    dist = space[name]
    for value in values:
        problem = param_problem(name, value)
        if problem:
            raise UsageError(f"bad --sweep {spec!r}: {value!r}: {problem}")
        if not _in_space(value, dist):
            raise UsageError(f"bad --sweep {spec!r}: {value!r} is outside the space of {name}")
    if not values:
        raise UsageError(f"bad --sweep {spec!r}: no values")
    return name, values


def _in_space(value: Any, dist: BaseDistribution) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if not isinstance(value, int | float):
        return False
    if isinstance(dist, IntDistribution) and value != int(value):
        return False
    if not isinstance(dist, IntDistribution | FloatDistribution):
        return False
    return bool(dist.low <= value <= dist.high)


def sweep_configurations(
    name: str, values: list[Any], repeats: int, space: SearchSpace
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(params, sweep tag) for each value x repeat; unswept params at the baseline."""
    baseline = {p: v for p, v in SWEEP_BASELINE.items() if p in space}
    for param, value in baseline.items():
        if not _in_space(value, space[param]):
            raise UsageError(
                f"the sweep baseline {param}={value!r} is outside the overridden space; "
                "widen --space to include it"
            )
    return [
        ({**baseline, name: value}, records.sweep_point(name, value, repeat))
        for value in values
        for repeat in range(repeats)
    ]
