"""The study as `dashboard` serves it: trials whose stored values are NaN shown as failed.

optuna-dashboard 0.21 asserts that no trial value is NaN when it serializes a study, so one
such trial (a hand-edited journal, a foreign writer: Optuna's own `tell` never stores one)
made every request for the study's page answer HTTP 500. `FiniteView` passes every call to
the real storage, except that a COMPLETE trial with a NaN value reads as FAIL, without values,
with the reason in a user attr; nothing stored is changed. Infinite values the dashboard shows
as they are.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState

LEFT_OUT_NOTE = "left_out"  # the user attr the dashboard shows on such a trial's page


def shown_trial(trial: FrozenTrial) -> FrozenTrial:
    """`trial`, or for a COMPLETE one holding a NaN value a FAIL copy saying why."""
    values = trial.values
    if trial.state != TrialState.COMPLETE or not values or not any(map(math.isnan, values)):
        return trial
    shown = copy.copy(trial)
    shown.state = TrialState.FAIL
    shown.values = None
    shown.user_attrs = {
        **trial.user_attrs,
        LEFT_OUT_NOTE: f"stored as COMPLETE with values {values}: not finite, shown as failed",
    }
    return shown


class FiniteView(BaseStorage):
    """A storage seen through `shown_trial`; every other call goes to `inner` unchanged."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        trials = [shown_trial(t) for t in self.inner.get_all_trials(study_id, deepcopy)]
        return [t for t in trials if states is None or t.state in states]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return shown_trial(self.inner.get_trial(trial_id))

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self.inner.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self.inner.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.inner.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.inner.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.inner.get_all_studies()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self.inner.create_new_trial(study_id, template_trial)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self.inner.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self.inner.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.inner.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.inner.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.inner.set_trial_system_attr(trial_id, key, value)
