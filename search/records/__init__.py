"""What a study, a trial and an artifact folder hold: every stored name, its writer, its reader.

No other module spells a stored key: they import the names and call the functions here, and
`search.records.artifacts` for what an artifact folder holds (docs/study-records.md describes
each record for a user). Writers take anything with
`set_user_attr` (an `optuna.Study`, an `optuna.Trial`); readers take the stored mapping
(`study.user_attrs`, `trial.user_attrs`) and never raise: a study written by plain Optuna, by
an older vae-search, or by hand may lack a key or hold a value of another type, and such a
value reads as absent.

Format versions. `FORMAT_VERSION` is stored with the study (`format_version`). Version 1 is
what vae-search wrote up to commit 6006fe1, without a version key: its readers are these
readers. Version 2 adds the key and nothing else; a reader that meets a version it does not
know reads what it recognises, as for any foreign study. Version 3 moves a trial's long machine
records (`MACHINE_RECORDS`: its curve, rung values and artifact ids) from its user attrs into
its system attrs under `MACHINE_PREFIX`: optuna-dashboard lists every user attr on a trial's
page, and these records made that page thousands of pixels wide. `trial_attrs` reads both.
Version 3 also stores each `run`'s provenance under a key of its own (`RUN_PREFIX`), written
once, so that runs started together cannot lose each other's record; `read_runs` reads both.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

FORMAT_VERSION = 3
CREATOR = "vae-search"  # the `created_by` value that marks a study as ours

# -- study user attrs ----------------------------------------------------------------------
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

# -- trial user attrs ------------------------------------------------------------------------
SWEEP = "sweep"  # {"name": parameter, "value": its value, "repeat": i}: a one-factor sweep
CONFIRMS = "confirms"  # the first trial number of the configuration this run confirms
DESIGNED = "designed"  # True: enqueued, an experiment, never pruned
SEED = "seed"
WORKER = "worker"  # host:pid
EPOCHS_PLANNED = "epochs_planned"
EPOCHS_RUN = "epochs_run"
CURVE = "curve"  # per-epoch rows: epoch, val_ssim, val_mse, losses, seconds
FAIL_REASON = "fail_reason"
PRUNED_REASON = "pruned_reason"
PRUNED_AT_EPOCH = "pruned_at_epoch"
RUNG_VALUES = "rung_values"  # {"<epoch>": [ssim, mse]}, NaN stored as null
ARTIFACTS = "artifacts"  # {artifact name: artifact id} (search.records.artifacts)
DEVICE = "device"
N_PARAMS = "n_params"
WALL_TIME_S = "wall_time_s"
IMAGES_PER_S = "images_per_s"
SPLITS = ("train", "val", "test")  # measurements are stored as `<split>_<metric>`
METRICS = ("ssim", "mse")

TRIAL_KEYS = (
    SWEEP,
    CONFIRMS,
    DESIGNED,
    SEED,
    WORKER,
    EPOCHS_PLANNED,
    EPOCHS_RUN,
    CURVE,
    FAIL_REASON,
    PRUNED_REASON,
    PRUNED_AT_EPOCH,
    RUNG_VALUES,
    ARTIFACTS,
    DEVICE,
    N_PARAMS,
    WALL_TIME_S,
    IMAGES_PER_S,
    *(f"{split}_{metric}" for split in SPLITS for metric in METRICS),
)

# The retry of a trial whose worker died (search.storage) keeps only these user attrs: the
# others (curve, rung values, timings) describe the dead attempt.
RETRY_KEEPS = (SWEEP,)
# A trial that never trained because other workers had used up the budget: True. Older
# versions said so only in the fail reason's first word, which `is_surplus` still reads.
SURPLUS = "surplus"
SURPLUS_PREFIX = "surplus"

# -- system attrs Optuna writes and we read ----------------------------------------------------
OPTUNA_FIXED_PARAMS = "fixed_params"  # set by `enqueue_trial`: the trial was designed
OPTUNA_RETRY_HISTORY = "retry_history"  # set by RetryFailedTrialCallback
HEARTBEAT = "vae_search:heartbeat"  # trial system attr: the worker's last sign of life
DASHBOARD_FIGURE_PREFIX = "vae-search-"  # our optuna-dashboard figure ids (the story)


class AttrWriter(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...


# -- machine records: long trial records kept out of the dashboard's trial page -----------------
MACHINE_PREFIX = "vae_search:"
MACHINE_RECORDS = (CURVE, RUNG_VALUES, ARTIFACTS)


def _write_machine_record(trial: Any, key: str, value: Any) -> None:
    """Store `value` as the trial system attr `MACHINE_PREFIX + key` (an `optuna.Trial`: its
    storage and id); anything else (a test's stand-in) keeps it as a user attr."""
    storage = getattr(trial, "storage", None)
    trial_id = getattr(trial, "_trial_id", None)
    if storage is None or trial_id is None:
        trial.set_user_attr(key, value)
        return
    storage.set_trial_system_attr(trial_id, MACHINE_PREFIX + key, value)


def trial_attrs(trial: Any) -> dict[str, Any]:
    """Everything a trial (frozen or live) stores, as one mapping that every reader here takes:
    its user attrs, with its machine records (any version's place) under their plain names."""
    attrs = dict(getattr(trial, "user_attrs", {}) or {})
    if hasattr(trial, "system_attrs"):  # a FrozenTrial
        system = trial.system_attrs or {}
    elif hasattr(trial, "storage") and hasattr(trial, "_trial_id"):  # a live optuna.Trial
        system = trial.storage.get_trial_system_attrs(trial._trial_id)
    else:
        system = {}
    for key in MACHINE_RECORDS:
        if MACHINE_PREFIX + key in system:
            attrs[key] = system[MACHINE_PREFIX + key]
    return attrs


# -- reading helpers ---------------------------------------------------------------------------
def as_float(value: Any) -> float | None:
    """`value` as a finite float; None for None, bools, strings, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- the study's record ------------------------------------------------------------------------
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
    study.set_user_attr(SEARCH_SPACE, search_space)
    study.set_user_attr(SEARCH_SPACE_DISTRIBUTIONS, distributions)
    study.set_user_attr(FIXED_PARAMS, fixed_params)
    study.set_user_attr(DATA, data)
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
    study.set_user_attr(BUDGET, budget)


def read_budget(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    budget = attrs.get(BUDGET)
    return budget if isinstance(budget, dict) else None


def write_pruning_settings(study: AttrWriter, settings: dict[str, Any]) -> None:
    study.set_user_attr(PRUNING, settings)


def read_pruning_settings(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(attrs.get(PRUNING))


def write_convergence(study: AttrWriter, record: dict[str, Any]) -> None:
    """Where the seed-mean front stopped moving (search/convergence.py, as_record)."""
    study.set_user_attr(CONVERGENCE, record)


def read_convergence(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    record = attrs.get(CONVERGENCE)
    return record if isinstance(record, dict) else None


def read_runs(attrs: Mapping[str, Any]) -> list[Any]:
    """The run log, oldest first: the older single-key list (a non-list reads as empty), then
    each run's own entry in the order of its key."""
    runs = attrs.get(RUNS)
    old = list(runs) if isinstance(runs, list) else []
    own = sorted(k for k in attrs if isinstance(k, str) and k.startswith(RUN_PREFIX))
    return old + [attrs[k] for k in own]


def append_run(study: AttrWriter, attrs: Mapping[str, Any], entry: dict[str, Any]) -> None:
    """Store one `run`'s entry under a key of its own: one write, no read-modify-write, so
    concurrent runs lose nothing. (`attrs` is kept for the callers' sake.)"""
    del attrs
    key = f"{RUN_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    study.set_user_attr(key, entry)


# -- enqueued trials: sweep and confirmation tags ----------------------------------------------
def sweep_point(name: str, value: Any, repeat: int) -> dict[str, Any]:
    """What a sweep trial records of itself: the swept parameter, its value, which repeat."""
    return {"name": name, "value": value, "repeat": repeat}


def sweep_tag(point: Mapping[str, Any]) -> dict[str, Any]:
    """The user attrs of an enqueued sweep trial (`enqueue_trial(user_attrs=...)`)."""
    return {SWEEP: dict(point)}


def confirmation_tag(first: int) -> dict[str, Any]:
    """The user attrs of an enqueued confirmation run of trial `first`'s configuration."""
    return {CONFIRMS: first, DESIGNED: True}


def read_sweep(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`{"name", "value"}` of a sweep point; empty for any other trial."""
    return as_dict(attrs.get(SWEEP))


def sweep_name(attrs: Mapping[str, Any]) -> Any:
    return read_sweep(attrs).get("name")


def sweep_value(attrs: Mapping[str, Any]) -> Any:
    return read_sweep(attrs).get("value")


def read_confirms(attrs: Mapping[str, Any]) -> int | None:
    return as_int(attrs.get(CONFIRMS))


def read_designed(attrs: Mapping[str, Any]) -> bool:
    """Enqueued as an experiment (sweep, repeat, confirmation run): never to be pruned.

    The `designed` attr says so; sweep and confirmation attrs imply it, for studies written
    before the attr existed (their sweep trials were enqueued too).
    """
    return (
        attrs.get(DESIGNED) is True or bool(read_sweep(attrs)) or read_confirms(attrs) is not None
    )


def enqueued(system_attrs: Mapping[str, Any]) -> bool:
    """Did Optuna enqueue this trial (its system attrs hold the fixed parameters)?"""
    return OPTUNA_FIXED_PARAMS in system_attrs


def superseded_by_retries(system_attrs: Iterable[Mapping[str, Any]]) -> set[int]:
    """Trial numbers a retry replaced: those in some trial's `retry_history`.

    A retry inherits its original's user attrs, so counting both would count one training twice.
    """
    return {n for attrs in system_attrs for n in attrs.get(OPTUNA_RETRY_HISTORY, [])}


# -- one trial's record ------------------------------------------------------------------------
def write_trial_start(
    trial: AttrWriter, *, seed: int, worker: str, epochs_planned: int, designed: bool
) -> None:
    """What is known of a trial before it trains."""
    if designed:
        trial.set_user_attr(DESIGNED, True)
    trial.set_user_attr(SEED, seed)
    trial.set_user_attr(WORKER, worker)
    trial.set_user_attr(EPOCHS_PLANNED, epochs_planned)


def write_measurements(trial: AttrWriter, measurements: Mapping[str, Any]) -> None:
    """A finished training's summary (search.training.TrainResult.summary: TRIAL_KEYS)."""
    for key, value in measurements.items():
        if key in MACHINE_RECORDS:
            _write_machine_record(trial, key, value)
        else:
            trial.set_user_attr(key, value)


def write_failure(
    trial: AttrWriter, reason: str, curve: list[dict[str, float]] | None = None
) -> None:
    """Why a trial failed, with the curve it trained before, when there is one."""
    if curve is not None:
        _write_machine_record(trial, CURVE, curve)
        trial.set_user_attr(EPOCHS_RUN, len(curve))
    trial.set_user_attr(FAIL_REASON, reason)


def read_fail_reason(attrs: Mapping[str, Any]) -> str | None:
    return as_text(attrs.get(FAIL_REASON))


def write_surplus(trial: AttrWriter) -> None:
    """The trial ends unrun: other workers used up the study's budget first."""
    trial.set_user_attr(SURPLUS, True)
    trial.set_user_attr(FAIL_REASON, "surplus: the study already had its requested trials")


def is_surplus(attrs: Mapping[str, Any]) -> bool:
    """Did the trial end unrun because the budget was already used up by other workers?"""
    if attrs.get(SURPLUS) is True:
        return True
    # version 1 said so only in the reason's first word
    return (read_fail_reason(attrs) or "").startswith(SURPLUS_PREFIX)


@dataclass(frozen=True)
class PruningDecision:
    """Why and when a trial was pruned, and the values it recorded at each rung."""

    reason: str | None
    at_epoch: int | None
    rung_values: dict[int, tuple[float, float]]


def write_pruned(trial: AttrWriter, reason: str, at_epoch: int) -> None:
    trial.set_user_attr(PRUNED_REASON, reason)
    trial.set_user_attr(PRUNED_AT_EPOCH, at_epoch)


def write_rung_value(trial: AttrWriter, epoch: int, ssim: float, mse: float) -> None:
    """Add `(ssim, mse)` at rung `epoch` to the trial's rung values (earlier rungs kept; NaN and
    infinities stored as null, which strict JSON readers such as the dashboard take)."""
    recorded = dict(as_dict(trial_attrs(trial).get(RUNG_VALUES)))
    recorded[str(epoch)] = [_to_json(ssim), _to_json(mse)]
    _write_machine_record(trial, RUNG_VALUES, recorded)


def read_rung_value(attrs: Mapping[str, Any], epoch: int) -> tuple[float, float] | None:
    """`(ssim, mse)` recorded at rung `epoch` (null reads as NaN), None if none was."""
    value = as_dict(attrs.get(RUNG_VALUES)).get(str(epoch))
    if value is None:
        return None
    return _from_json(value[0]), _from_json(value[1])


def read_pruning_decision(attrs: Mapping[str, Any]) -> PruningDecision:
    rungs: dict[int, tuple[float, float]] = {}
    for key in as_dict(attrs.get(RUNG_VALUES)):
        try:
            value = read_rung_value(attrs, int(key))
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        if value is not None:
            rungs[int(key)] = value
    return PruningDecision(
        reason=as_text(attrs.get(PRUNED_REASON)),
        at_epoch=as_int(attrs.get(PRUNED_AT_EPOCH)),
        rung_values=rungs,
    )


def read_seed(attrs: Mapping[str, Any]) -> int | None:
    return as_int(attrs.get(SEED))


def read_curve(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-epoch rows (`curve`), only the well-formed ones, ordered by epoch."""
    raw = attrs.get(CURVE)
    if not isinstance(raw, list):
        return []
    rows = [r for r in raw if isinstance(r, dict) and as_float(r.get("epoch")) is not None]
    return sorted(rows, key=lambda r: float(r["epoch"]))


def read_epochs_run(attrs: Mapping[str, Any]) -> int | None:
    """Epochs a trial trained: `epochs_run`, else the length of its curve."""
    epochs = as_int(attrs.get(EPOCHS_RUN))
    if epochs is None and read_curve(attrs):
        epochs = len(read_curve(attrs))
    return epochs


def read_epochs_planned(attrs: Mapping[str, Any]) -> int | None:
    return as_int(attrs.get(EPOCHS_PLANNED))


def metric_key(split: str, metric: str) -> str:
    """The key of a measurement: `metric_key("test", "MSE")` is `test_mse`."""
    return f"{split}_{metric.lower()}"


def read_metric(attrs: Mapping[str, Any], split: str, metric: str) -> float | None:
    return as_float(attrs.get(metric_key(split, metric)))


def write_artifacts(trial: AttrWriter, ids: Mapping[str, str]) -> None:
    """The artifact ids a trial uploaded, by name (ARTIFACT_FILES)."""
    _write_machine_record(trial, ARTIFACTS, dict(ids))


def read_artifact_ids(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`{artifact name: id}` as stored; ids are checked by the artifact reader."""
    return as_dict(attrs.get(ARTIFACTS))


def _to_json(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _from_json(value: Any) -> float:
    return math.nan if value is None else float(value)
