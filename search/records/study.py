"""What a study holds: its stored names, their writers and readers (imported as `search.records`).

Format version 4 keeps a study's user attrs short and in words, as optuna-dashboard shows them
on the study's page: each long record (`STUDY_MACHINE_RECORDS` and each run's entry) is stored
as a study system attr under `MACHINE_PREFIX`, and its user attr holds a one-line summary for a
person. Readers take `study_attrs(study)`: the user attrs with every machine record (either
version's place) under its plain name, so a study of version 3 or older reads as before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from search.records.values import AttrWriter, as_dict, as_int

FORMAT_VERSION = 4
CREATOR = "vae-search"  # the `created_by` value that marks a study as ours
MACHINE_PREFIX = "vae_search:"  # system attrs holding machine records (trials' and studies')
SUMMARY_CHARS = 120  # the longest summary a study user attr holds

# -- study records -------------------------------------------------------------------------
FORMAT_VERSION_KEY = "format_version"
CREATED_BY = "created_by"
SEARCH_SPACE = "search_space"  # {param: description} for people and the report
SEARCH_SPACE_DISTRIBUTIONS = "search_space_distributions"  # what a resume searches again
FIXED_PARAMS = "fixed_params"  # parameters every trial shares, e.g. {"predictor": False}
DATA = "data"  # data provenance: source, path, sha256, counts, seed, note
SAMPLER = "sampler"
STUDY_SEED = "seed"
ARTIFACTS_DIR = "artifacts_dir"
BUDGET = "budget"  # preset, epochs, subset, extra_unlabeled, batch_size, validation_subset,
# backend (absent in studies from before backends: they trained under TensorFlow)
PRUNING = "pruning"  # enabled, grace_epochs, eta, rungs, noise_margin_sd, envelope_min_complete
CONVERGENCE = "convergence"  # stopped_at, finished, trials_since, window, converged, noise
RUNS = "runs"  # one entry per `run`: command, started, host, device, backend, versions, storage
# Each `run` stores its entry under a key of its own, RUN_PREFIX + time + random id, so runs
# that start together never overwrite each other's entry (the older single-key list is read
# too).
RUN_PREFIX = "run:"

STUDY_KEYS = (
    FORMAT_VERSION_KEY,
    CREATED_BY,
    SEARCH_SPACE,
    SEARCH_SPACE_DISTRIBUTIONS,
    FIXED_PARAMS,
    DATA,
    SAMPLER,
    STUDY_SEED,
    ARTIFACTS_DIR,
    BUDGET,
    PRUNING,
    CONVERGENCE,
    RUNS,
)
# Long records kept out of the dashboard's study page (version 4): system attrs.
STUDY_MACHINE_RECORDS = (
    SEARCH_SPACE,
    SEARCH_SPACE_DISTRIBUTIONS,
    FIXED_PARAMS,
    DATA,
    BUDGET,
    PRUNING,
    CONVERGENCE,
)


def _fit(text: str) -> str:
    """`text` on one line of at most SUMMARY_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _summary(key: str, value: Any) -> str | None:
    """The words a person reads for the machine record `key` (None: nothing is shown)."""
    record = as_dict(value)
    if key == SEARCH_SPACE:
        return f"{len(record)} parameters: {', '.join(sorted(map(str, record)))}"
    if key == FIXED_PARAMS:
        words = {True: "yes", False: "no", None: "none"}
        shown = (words.get(v, v) if isinstance(v, bool | None) else v for v in record.values())
        return "; ".join(f"{k}: {v}" for k, v in zip(record, shown, strict=True)) or "none"
    if key == DATA:
        counts = as_dict(record.get("counts"))
        splits = ("train", "validation", "test")
        sizes = ", ".join(f"{counts[k]} {k}" for k in splits if k in counts)
        return f"MNIST from {record.get('source')}: {sizes} images, split seed {record.get('seed')}"
    if key == BUDGET:
        epochs, subset = record.get("epochs"), record.get("subset")
        return (
            f"preset {record.get('preset')}: {epochs} epochs, {subset or 'all'} training images,"
            f" batch {record.get('batch_size')}, {record.get('backend', 'tensorflow')}"
        )
    if key == PRUNING:
        if not record.get("enabled"):
            return "off: every trial trains all its epochs"
        rungs = ", ".join(str(r) for r in record.get("rungs") or [])
        return (
            f"on: trials compared at epochs {rungs}" if rungs else "on, with no rung to compare at"
        )
    if key == CONVERGENCE:
        verdict = "converged" if record.get("converged") else "not converged"
        if record.get("stopped_at") is None:
            return f"{verdict}: no trial has completed"
        return (
            f"{verdict}: the front last moved at trial {record.get('stopped_at')};"
            f" {record.get('trials_since')} finished trials since, {record.get('window')} needed"
        )
    return None  # the distributions: the search space's summary says it


def _run_summary(entry: Mapping[str, Any]) -> str:
    """When, where and how a `run` started: its start to the minute, host and command."""
    started = str(entry.get("started"))
    zone = " UTC" if started.endswith("+00:00") else ""
    started = started[:16].replace("T", " ") + zone
    return f"{started} on {entry.get('host')}: {entry.get('command')}"


def _write_machine(study: Any, key: str, value: Any, summary: str | None) -> None:
    """`value` as the study system attr MACHINE_PREFIX + key and `summary` as its user attr
    (an `optuna.Study`); anything else (a test's stand-in) keeps `value` as a user attr."""
    storage, study_id = getattr(study, "_storage", None), getattr(study, "_study_id", None)
    if storage is None or study_id is None:
        study.set_user_attr(key, value)
        return
    storage.set_study_system_attr(study_id, MACHINE_PREFIX + key, value)
    if summary is not None:
        study.set_user_attr(key, _fit(summary))


def stored_study_attrs(storage: Any, study_id: int) -> dict[str, Any]:
    """Everything study `study_id` of `storage` stores, as the readers here take it: its user
    attrs, with its machine records (any version's place) under their plain names."""
    attrs = dict(storage.get_study_user_attrs(study_id) or {})
    system = storage.get_study_system_attrs(study_id) or {}
    for key, value in system.items():
        if not isinstance(key, str) or not key.startswith(MACHINE_PREFIX):
            continue
        plain = key[len(MACHINE_PREFIX) :]
        if plain in STUDY_MACHINE_RECORDS or plain.startswith(RUN_PREFIX):
            attrs[plain] = value
    return attrs


def study_attrs(study: Any) -> dict[str, Any]:
    """`stored_study_attrs` of an `optuna.Study` (anything else: its user attrs)."""
    storage, study_id = getattr(study, "_storage", None), getattr(study, "_study_id", None)
    if storage is None or study_id is None:
        return dict(getattr(study, "user_attrs", {}) or {})
    return stored_study_attrs(storage, study_id)


def format_version(attrs: Mapping[str, Any]) -> int:
    """The format a study was written in: its `format_version`, 1 when absent (before 2)."""
    version = as_int(attrs.get(FORMAT_VERSION_KEY))
    return 1 if version is None or version < 1 else version


def is_ours(attrs: Mapping[str, Any]) -> bool:
    """Was the study written by vae-search's `run`?"""
    return attrs.get(CREATED_BY) == CREATOR


def write_study_record(
    study: AttrWriter,
    *,
    search_space: dict[str, Any],
    distributions: dict[str, Any],
    fixed_params: dict[str, Any],
    data: dict[str, Any],
    sampler: str,
    seed: int,
    artifacts_dir: str,
) -> None:
    """What a study is, written once when `run` creates it."""
    study.set_user_attr(CREATED_BY, CREATOR)
    study.set_user_attr(FORMAT_VERSION_KEY, FORMAT_VERSION)
    _write_machine(study, SEARCH_SPACE, search_space, _summary(SEARCH_SPACE, search_space))
    _write_machine(study, SEARCH_SPACE_DISTRIBUTIONS, distributions, None)
    _write_machine(study, FIXED_PARAMS, fixed_params, _summary(FIXED_PARAMS, fixed_params))
    _write_machine(study, DATA, data, _summary(DATA, data))
    study.set_user_attr(SAMPLER, sampler)
    study.set_user_attr(STUDY_SEED, seed)
    study.set_user_attr(ARTIFACTS_DIR, artifacts_dir)


def read_search_space(attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The `search_space` description, its well-formed entries only."""
    return {str(k): v for k, v in as_dict(attrs.get(SEARCH_SPACE)).items() if isinstance(v, dict)}


def read_distributions(attrs: Mapping[str, Any]) -> Any | None:
    """The stored distributions (search.space.space_from_json reads them), None if absent."""
    return attrs.get(SEARCH_SPACE_DISTRIBUTIONS)


def read_fixed_params(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return dict(as_dict(attrs.get(FIXED_PARAMS)))


def read_data(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The data provenance (source, path, sha256, counts, seed, note), None if not a dict."""
    data = attrs.get(DATA)
    return data if isinstance(data, dict) else None


def read_artifacts_dir(attrs: Mapping[str, Any]) -> str | None:
    """The artifact folder as stored (absolute since it was first recorded so; older studies
    may hold a path relative to where `run` started: search.paths.stored_artifacts_dir)."""
    stored = attrs.get(ARTIFACTS_DIR)
    return stored if isinstance(stored, str) and stored else None


def write_budget(study: AttrWriter, budget: dict[str, Any]) -> None:
    _write_machine(study, BUDGET, budget, _summary(BUDGET, budget))


def read_budget(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    budget = attrs.get(BUDGET)
    return budget if isinstance(budget, dict) else None


def write_pruning_settings(study: AttrWriter, settings: dict[str, Any]) -> None:
    _write_machine(study, PRUNING, settings, _summary(PRUNING, settings))


def read_pruning_settings(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(attrs.get(PRUNING))


def write_convergence(study: AttrWriter, record: dict[str, Any]) -> None:
    """Where the seed-mean front stopped moving (search/convergence.py, as_record)."""
    _write_machine(study, CONVERGENCE, record, _summary(CONVERGENCE, record))


def read_convergence(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    record = attrs.get(CONVERGENCE)
    return record if isinstance(record, dict) else None


def read_runs(attrs: Mapping[str, Any]) -> list[Any]:
    """The run log, oldest first: the older single-key list (a non-list reads as empty), then
    each run's own entry in the order of its key (a summary whose entry is lost is left out)."""
    runs = attrs.get(RUNS)
    old = list(runs) if isinstance(runs, list) else []
    own = sorted(k for k in attrs if isinstance(k, str) and k.startswith(RUN_PREFIX))
    return old + [attrs[k] for k in own if not isinstance(attrs[k], str)]


def append_run(study: AttrWriter, attrs: Mapping[str, Any], entry: dict[str, Any]) -> None:
    """Store one `run`'s entry under a key of its own: one write, no read-modify-write, so
    concurrent runs lose nothing. (`attrs` is kept for the callers' sake.)"""
    del attrs
    key = f"{RUN_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    _write_machine(study, key, entry, _run_summary(entry))
