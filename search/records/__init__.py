"""What a study, a trial and an artifact folder hold: every stored name, its writer, its reader.

No other module spells a stored key: they import the names and call the functions here (the
study's come from `search.records.study`), and `search.records.artifacts` for what an artifact
folder holds (docs/study-records.md describes each record for a user). Writers take anything
with `set_user_attr` (an `optuna.Study`, an `optuna.Trial`); readers take the stored mapping
(`study_attrs(study)`, `trial_attrs(trial)`) and never raise: a study written by plain Optuna, by
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
Version 4 does for the study what 3 did for trials (search/records/study.py): its long records
become study system attrs and its user attrs one-line summaries; `study_attrs` reads both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# the study's records (search/records/study.py) and the value readers, as `search.records.*`
from search.records.study import *  # noqa: F403
from search.records.study import MACHINE_PREFIX
from search.records.values import *  # noqa: F403
from search.records.values import AttrWriter, as_dict, as_float, as_int, as_text

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


# -- machine records: long trial records kept out of the dashboard's trial page -----------------
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
