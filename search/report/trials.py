"""Read a study into plain records: the only module of the report that touches Optuna objects.

Everything a trial stores is read defensively: a study made by plain Optuna, or by an older
version of vae-search, may lack any user attr, or hold a value of an unexpected type. Such a
value is treated as absent, never as an error, so the report shows what can be shown.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import records
from search.configurations import Configuration, Run, group_runs
from search.records import as_float

# The objectives a vae-search study records, in order (docs/study-records.md).
VAE_SEARCH_OBJECTIVES = (("SSIM", True), ("MSE", False))


@dataclass(frozen=True)
class Objective:
    """One objective of the study: its position in `trial.values`, name and direction."""

    index: int
    name: str
    maximize: bool

    @property
    def direction_word(self) -> str:
        return "maximised" if self.maximize else "minimised"


@dataclass(frozen=True)
class TrialRecord:
    """A trial as plain data. `values` is set only for COMPLETE trials with finite values."""

    number: int
    state: str
    values: tuple[float, ...] | None
    params: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    start: datetime | None = None
    complete: datetime | None = None

    def number_attr(self, key: str) -> float | None:
        """A user attr as a finite float, or None when absent or not a number."""
        return as_float(self.attrs.get(key))

    def int_attr(self, key: str) -> int | None:
        value = as_float(self.attrs.get(key))
        return None if value is None else int(value)

    def text_attr(self, key: str) -> str | None:
        value = self.attrs.get(key)
        return None if value is None else str(value)

    def dict_attr(self, key: str) -> dict[str, Any]:
        value = self.attrs.get(key)
        return value if isinstance(value, dict) else {}

    def curve(self) -> list[dict[str, Any]]:
        """Per-epoch records (`curve` attr), only the well-formed ones, ordered by epoch."""
        return records.read_curve(self.attrs)

    def epochs_run(self) -> int | None:
        """Epochs this trial trained: the `epochs_run` attr, else the length of its curve."""
        return records.read_epochs_run(self.attrs)

    def value(self, objective: Objective) -> float:
        """The objective's value; only for COMPLETE trials (a bug to ask otherwise)."""
        assert self.values is not None, f"trial {self.number} has no values"
        return self.values[objective.index]

    def metric(self, split: str, objective: Objective) -> float | None:
        """The `<split>_<name>` attr, e.g. `test_mse`; "val" falls back to the objective value."""
        value = records.read_metric(self.attrs, split, objective.name)
        if value is None and split == "val" and self.values is not None:
            value = self.values[objective.index]
        return value

    def epochs_saved(self, default_planned: int | None) -> int:
        """Epochs a PRUNED trial did not train: planned (its attr, else the budget) minus run."""
        planned = records.read_epochs_planned(self.attrs) or default_planned
        run = self.epochs_run()
        if self.state != "PRUNED" or planned is None or run is None:
            return 0
        return max(planned - run, 0)

    @property
    def designed(self) -> bool:
        """Enqueued as an experiment (sweep, repeat, confirmation run): never to be pruned.

        The `designed` attr says so; sweep and confirmation attrs imply it, for studies written
        before the attr existed (their sweep trials were enqueued too).
        """
        return records.read_designed(self.attrs)

    def duration_s(self) -> float | None:
        if self.start is None or self.complete is None:
            return None
        return (self.complete - self.start).total_seconds()


@dataclass(frozen=True)
class StudyRecords:
    """A study as plain data: what the context builder needs and nothing Optuna-specific."""

    name: str
    objectives: tuple[Objective, ...]
    trials: tuple[TrialRecord, ...]
    attrs: dict[str, Any]
    storage_url: str | None

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE" and t.values is not None]

    @property
    def left_out(self) -> list[TrialRecord]:
        """COMPLETE trials whose stored values are missing or not finite (NaN, infinite): no
        front, mean or figure can use them, so the report says how many it left out."""
        return [t for t in self.trials if t.state == "COMPLETE" and t.values is None]

    def configurations(self) -> list[Configuration]:
        """Complete trials grouped by parameters: one configuration, its runs under each seed."""
        return group_runs(
            Run(t.number, t.params, t.values) for t in self.complete if t.values is not None
        )

    @functools.cached_property
    def _by_number(self) -> dict[int, TrialRecord]:
        return {t.number: t for t in self.trials}

    def trial(self, number: int) -> TrialRecord:
        return self._by_number[number]

    @property
    def maximize(self) -> tuple[bool, ...]:
        return tuple(o.maximize for o in self.objectives)

    @property
    def is_vae_search(self) -> bool:
        """True when the study was written by vae-search (its `created_by` user attr)."""
        return records.is_ours(self.attrs)

    def objective(self, name: str) -> Objective | None:
        for objective in self.objectives:
            if objective.name.upper() == name.upper():
                return objective
        return None

    @property
    def error(self) -> Objective | None:
        """The objective the bias/variance analysis calls error: MSE, when the study has it."""
        return self.objective("MSE")

    def search_space(self) -> dict[str, dict[str, Any]]:
        """The `search_space` study attr, its well-formed entries only."""
        return records.read_search_space(self.attrs)

    def param_names(self) -> list[str]:
        """Parameters of complete trials, in search-space order, then in order of appearance."""
        names = list(self.search_space())
        for trial in self.trials:
            for name in trial.params:
                if name not in names:
                    names.append(name)
        used = {name for t in self.complete for name in t.params}
        return [n for n in names if n in used]


def redact_url(url: str | None) -> str | None:
    """The storage URL with any password replaced by `***` (user names are kept).

    The one rule of `search.storage.redact_url`, which also hides passwords holding '@'.
    """
    from search.storage import redact_url as redact

    return redact(url) if url else url


def _storage_url(study: optuna.Study) -> str | None:
    """The URL an RDB storage was opened with, if the storage has one."""
    storage: Any = getattr(study, "_storage", None)
    for _ in range(3):  # _CachedStorage wraps RDBStorage; be tolerant of further wrapping
        url = getattr(storage, "url", None)
        if isinstance(url, str):
            return redact_url(url)
        storage = getattr(storage, "_backend", None)
    return None


def _objectives(study: optuna.Study) -> tuple[Objective, ...]:
    names = study.metric_names
    if names is None and records.is_ours(records.study_attrs(study)):
        names = [name for name, _ in VAE_SEARCH_OBJECTIVES]  # the contract's objectives
    names = names or [f"Objective {i}" for i in range(len(study.directions))]
    return tuple(
        Objective(index=i, name=str(name), maximize=direction == StudyDirection.MAXIMIZE)
        for i, (name, direction) in enumerate(zip(names, study.directions, strict=True))
    )


def _record(trial: FrozenTrial) -> TrialRecord:
    values: tuple[float, ...] | None = None
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        floats = [as_float(v) for v in trial.values]
        if all(v is not None for v in floats):
            values = tuple(v for v in floats if v is not None)
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        values=values,
        params=dict(trial.params),
        attrs=records.trial_attrs(trial),
        start=trial.datetime_start,
        complete=trial.datetime_complete,
    )


def read_study(study: optuna.Study) -> StudyRecords:
    """Read every trial of `study` once (no deep copies) into plain records; a trial given back
    unrun (FAIL, surplus: the budget was full) never trained and is left out."""
    return StudyRecords(
        name=study.study_name,
        objectives=_objectives(study),
        trials=tuple(
            _record(t)
            for t in study.get_trials(deepcopy=False)
            if not (t.state == TrialState.FAIL and records.is_surplus(records.trial_attrs(t)))
        ),
        attrs=records.study_attrs(study),
        storage_url=_storage_url(study),
    )
