"""Studies as plain JSON-able data, for scripts: `studies --json` and export's config.json.

One function describes a study (name, directions, objective names, trial counts per state,
storage without credentials), so a script that reads `studies --json` finds the same fields
under `study` in an exported model's config.json.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import storage as storage_module


def count_states(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials per state, every state named as `TrialState.name` (upper case), in Optuna's
    order, zeros included: the one count the run's closing line and scripts both use."""
    counts = {state.name: 0 for state in TrialState}
    for trial in trials:
        counts[trial.state.name] += 1
    return counts


def non_finite(trials: Iterable[FrozenTrial]) -> list[int]:
    """Numbers of the COMPLETE trials whose stored values are missing or not finite (NaN,
    infinite): Optuna counts them complete, but no front, report or export can use them."""
    return [
        t.number
        for t in trials
        if t.state == TrialState.COMPLETE
        and (not t.values or not all(math.isfinite(v) for v in t.values))
    ]


def left_out_line(name: str, numbers: list[int]) -> str:
    """What `studies` says of a study with such trials (on stderr, beside its table row)."""
    listed = ", ".join(str(n) for n in numbers[:10]) + (", …" if len(numbers) > 10 else "")
    return (
        f"note: {len(numbers)} of the complete trials of {name} hold values that are not "
        f"finite (NaN or infinite) and are left out of its front, report and export "
        f"({'trial' if len(numbers) == 1 else 'trials'} {listed})"
    )


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state, every state named (lower case), zeros included."""
    return {name.lower(): n for name, n in count_states(study.get_trials(deepcopy=False)).items()}


def study_summary(study: optuna.Study, storage_url: str) -> dict[str, Any]:
    """What a script needs to know of a study; the storage URL never carries a password."""
    return {
        "name": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "metric_names": study.metric_names,
        "trials": state_counts(study),
        # counted complete above, yet left out of the front, report and export
        "non_finite_trials": non_finite(study.get_trials(deepcopy=False)),
        "storage": storage_module.redact_url(storage_module.absolute_url(storage_url)),
    }


def storage_summaries(url: str) -> list[dict[str, Any]]:
    """`study_summary` of every study in the storage at `url` (which must exist)."""
    storage = storage_module.open_storage(url, must_exist=True)
    return [
        study_summary(optuna.load_study(study_name=s.study_name, storage=storage), url)
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
