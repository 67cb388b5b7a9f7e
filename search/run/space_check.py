"""A resumed study's trials against the space this run searches: refused before any data.

Optuna fails a trial in the middle of a run when a parameter is suggested with another kind
of distribution than a stored trial used (an integer range against a choice), or other
choices; seen with a study made by plain Optuna, and with `--space filters=8` (a choice) on a
study that searched a range. A study that vae-search did not write is also refused when its
trials searched a parameter over another range, or one this run does not search: their
values would sit in one front with trials from another space. Reads storage, writes nothing.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)

from search import records
from search import space as search_space
from search.errors import UsageError
from search.run.options import RunOptions


def describe(distribution: BaseDistribution) -> str:
    """A distribution in a user's words: `integers 1 to 64`, `choices bce, l1`."""
    if isinstance(distribution, CategoricalDistribution):
        return "choices " + ", ".join(str(c) for c in distribution.choices)
    if isinstance(distribution, IntDistribution | FloatDistribution):
        kind = "integers" if isinstance(distribution, IntDistribution) else "numbers"
        scale = " (log scale)" if distribution.log else ""
        return f"{kind} {distribution.low:g} to {distribution.high:g}{scale}"
    return type(distribution).__name__


def searched_space(
    attrs: dict[str, Any], options: RunOptions, space: search_space.SearchSpace
) -> search_space.SearchSpace:
    """What the run will search: the stored space on a plain resume, else this run's."""
    stored = records.read_distributions(attrs)
    return search_space.space_from_json(stored) if stored and not options.space else space


def check_same_space(
    storage: optuna.storages.BaseStorage, options: RunOptions, space: search_space.SearchSpace
) -> None:
    """Raise UsageError naming the first parameter whose stored trials the run cannot join."""
    try:
        study_id = storage.get_study_id_from_name(options.study)
    except KeyError:
        return  # a new study
    attrs = records.stored_study_attrs(storage, study_id)  # records of any format version
    ours = records.is_ours(attrs)
    searched = searched_space(attrs, options, space)
    seen: set[tuple[str, str]] = set()
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        for name, stored in trial.distributions.items():
            key = (name, repr(stored))
            if key in seen:
                continue
            seen.add(key)
            now = searched.get(name)
            why = _difference(name, stored, now, strict=not ours)
            if why:
                raise UsageError(
                    f"study {options.study!r} cannot be resumed by this run: trial "
                    f"{trial.number} {why}. Start a new study with --study NEW"
                    + ("" if ours else ", or search the study with Optuna as it was made")
                )


def _difference(
    name: str, stored: BaseDistribution, now: BaseDistribution | None, strict: bool
) -> str | None:
    if now is None:
        return f"has the parameter {name}, which this run does not search" if strict else None
    try:
        check_distribution_compatibility(stored, now)
    except ValueError:
        return f"searched {name} as {describe(stored)}, this run as {describe(now)}"
    if strict and stored != now:
        return f"searched {name} as {describe(stored)}, this run as {describe(now)}"
    return None
