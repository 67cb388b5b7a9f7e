"""Dead-worker detection shared by every storage: the heartbeat settings `run` uses, their
check, and the retry of a dead worker's trial.

With `heartbeat_interval` set, a worker's running trial records a heartbeat every
`heartbeat_interval` seconds; whenever any worker starts a trial, RUNNING trials whose last
heartbeat is older than `grace_period` seconds (default: 4 heartbeat intervals) are failed
(with `fail_reason` recorded) and retried at most `max_retry` times through Optuna's
`RetryHeartbeatStaleTrialCallback`, as a WAITING trial with the same parameters.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from search import defaults, records
from search.errors import UsageError

# Defaults for `run`: a trial is declared dead 2 minutes after its last heartbeat, and a trial
# whose worker keeps dying is tried at most 1 + MAX_RETRY times.
HEARTBEAT_INTERVAL_S = defaults.HEARTBEAT_INTERVAL_S
GRACE_PERIODS = defaults.GRACE_PERIODS  # default grace period, in heartbeat intervals
GRACE_PERIOD_S = GRACE_PERIODS * HEARTBEAT_INTERVAL_S
MAX_RETRY = 3
HEARTBEAT_ATTR = records.HEARTBEAT
# User attrs a retried trial keeps from the trial whose worker died; everything else (curve,
# rung values, timings) described the dead attempt and is recomputed.
RETRY_KEEPS_USER_ATTRS = records.RETRY_KEEPS


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of heartbeat-stale trials, minus the dead attempt's measurements.

    The WAITING copy keeps params and the retry history (system attrs `failed_trial`,
    `retry_history`) but only the user attrs that describe what to run (`sweep`), so a
    retried trial's curve and rung values are its own.
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {
            k: v for k, v in trial.user_attrs.items() if k in RETRY_KEEPS_USER_ATTRS
        }
        trial.system_attrs = {
            k: v
            for k, v in trial.system_attrs.items()
            if k != HEARTBEAT_ATTR and not k.startswith(records.MACHINE_PREFIX)
        }
        super().__call__(study, trial)


class AttrHeartbeat(BaseHeartbeat):
    """The RDB storage's heartbeat contract for a storage that has none of its own (the
    journal file, the gRPC proxy's client), mixed into that storage's class.

    `record_heartbeat` writes the wall-clock time as the trial system attribute
    `vae_search:heartbeat`; a RUNNING trial is stale when that time (or, before its first
    heartbeat, its start time) is older than the grace period. Optuna's optimize loop then
    fails it and calls the retry callback, exactly as for RDB storages. The workers' clocks
    must agree to well within the grace period (NTP does).
    """

    heartbeat_interval: int | None = None
    grace_period: int | None = None
    heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None

    def record_heartbeat(self, trial_id: int) -> None:
        storage = self._as_storage()
        if storage.get_trial(trial_id).state.is_finished():
            return
        # It may finish between the check and the write: then there is nothing to keep alive.
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        storage = self._as_storage()
        grace = self.grace_period or GRACE_PERIODS * (self.heartbeat_interval or 0)
        now = time.time()
        stale = []
        running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        for trial in running:
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()  # naive local time, as stored
            if last is not None and now - float(last) > grace:
                stale.append(trial._trial_id)
        record_dead_worker(storage, stale, grace)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.heartbeat_stale_trial_callback

    def _as_storage(self) -> BaseStorage:
        assert isinstance(self, BaseStorage), "AttrHeartbeat is mixed into a storage class"
        return self


def record_dead_worker(storage: BaseStorage, trial_ids: list[int], grace: int) -> None:
    reason = f"worker died: no heartbeat for more than {grace} s"
    for trial_id in trial_ids:
        # Another worker may have failed it first.
        with contextlib.suppress(UpdateFinishedTrialError):
            storage.set_trial_user_attr(trial_id, records.FAIL_REASON, reason)


def check_heartbeat(interval: int | None, grace: int | None, max_retry: int) -> None:
    if interval is None:
        if grace is not None:
            raise UsageError("a heartbeat grace period needs a heartbeat interval")
        return
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        raise UsageError(
            f"the heartbeat interval must be a positive whole number of seconds, not {interval!r}"
        )
    if grace is not None and (not isinstance(grace, int) or grace <= interval):
        raise UsageError(
            f"the heartbeat grace period ({grace!r} s) must be a whole number of seconds "
            f"longer than the heartbeat interval ({interval} s)"
        )
    if not isinstance(max_retry, int) or max_retry < 0:
        raise UsageError(f"the retry bound must be 0 or more, not {max_retry!r}")
