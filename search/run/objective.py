"""One trial: suggest a configuration, train it with the pruner's epoch hook, store its
curve, metrics and artifacts, and return (SSIM, MSE)."""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search import records
from search import space as search_space
from search.faults import fault_reason
from search.pareto import dominated_by_any
from search.pruning import prune_reason
from search.run import total
from search.run.budget import claim_budget
from search.run.options import RunOptions
from search.run.setup import MAXIMIZE, epochs, pruner_config, training_config, worker_name
from search.stopping import STOP


def is_designed(trial: optuna.Trial) -> bool:
    """Was this trial enqueued (a sweep, a repeat, a confirmation run, anything a user enqueues)?

    Optuna marks every enqueued trial with the system attr `fixed_params`; a retry of a failed
    trial carries its original's system attrs, so it is designed exactly when the original was.
    Designed trials are experiments: they are never pruned.
    """
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return records.enqueued(frozen.system_attrs)


class Objective:
    """Train the configuration a trial suggests; store curve, metrics and artifacts."""

    def __init__(
        self,
        options: RunOptions,
        space: search_space.SearchSpace,
        data: Any,
        artifact_store: Any,
        target_total: int | None,
    ) -> None:
        self.options = options
        self.space = space
        self.data = data
        self.artifact_store = artifact_store
        self.target_total = target_total
        self.epochs = epochs(options)
        self.pruner = pruner_config(options, self.epochs) if options.pruning else None
        self.interrupted_trial: int | None = None  # the trial a signal stopped, for the message
        self.current_trial: optuna.Trial | None = None  # the trial this process trains now
        self.uploaded: list[str] = []  # the current trial's artifact ids, in the store

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        self.current_trial, self.uploaded = trial, []
        try:
            return self._train_and_store(trial)
        except KeyboardInterrupt:
            self.interrupted_trial = trial.number
            records.write_failure(trial, "interrupted (Ctrl-C or SIGTERM) during the trial")
            raise
        except Exception as error:
            if STOP.signum is None:
                fault = fault_reason(error)
                if fault is not None:  # a full disk, a broken storage: the run stops (driver)
                    self.discard_artifacts()  # frees the space the FAIL below may need
                    with contextlib.suppress(Exception):  # the storage may be what failed
                        records.write_failure(trial, f"stopped by a fault: {fault}")
                raise
            # The signal landed inside TensorFlow or Keras (tracing, a callback), which turned
            # the KeyboardInterrupt into an error of its own: it is still the interruption.
            self.interrupted_trial = trial.number
            records.write_failure(trial, "interrupted (Ctrl-C or SIGTERM) during the trial")
            raise KeyboardInterrupt(f"signal {STOP.signum}") from None

    def _train_and_store(self, trial: optuna.Trial) -> tuple[float, float]:
        # Imported here: TensorFlow starts only in a process that trains.
        from search.outputs import write_trial_outputs
        from search.training import TrainingFailed, tf_errors_fail_trial, train_vae

        study = trial.study
        STOP.check()
        if self.target_total is not None:
            claim_budget(study, trial, self.target_total)
        if self.options.total_trials:
            total.claim(study, trial, self.options.total_trials, 1 + self.options.confirm)
        params = search_space.suggest_params(trial, self.space)
        params["predictor"] = self.options.predictor
        designed = is_designed(trial)
        seed = self.options.seed + trial.number
        records.write_trial_start(
            trial, seed=seed, worker=worker_name(), epochs_planned=self.epochs, designed=designed
        )

        def on_epoch(record: dict[str, float]) -> str | None:
            STOP.check()
            if self.pruner is None:
                return None
            return prune_reason(
                study,
                trial,
                int(record["epoch"]),
                record["val_ssim"],
                record["val_mse"],
                config=self.pruner,
                judge=not designed,  # an experiment runs to its end; its values still count
            )

        try:
            # A repeat of the previous trial's configuration reuses its traced step.
            result = train_vae(
                params,
                self.data,
                training_config(self.options, seed),
                on_epoch,
                reuse_traced_step=True,
            )
        except TrainingFailed as failure:
            records.write_failure(trial, failure.reason, failure.curve)
            raise

        records.write_measurements(trial, result.summary())
        if result.stopped_reason:
            records.write_pruned(trial, result.stopped_reason, result.epochs_run)
            raise optuna.TrialPruned(result.stopped_reason)
        assert result.val_ssim is not None and result.val_mse is not None  # not stopped: scored
        if not (math.isfinite(result.val_ssim) and math.isfinite(result.val_mse)):
            reason = "validation metrics are not finite"
            records.write_failure(trial, reason)
            raise TrainingFailed(reason, result.curve)

        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        keep_model = self.options.keep_models == "all" or (
            self.options.keep_models == "pareto"
            and not dominated_by_any(
                [result.val_ssim, result.val_mse], [t.values for t in completed], MAXIMIZE
            )
        )
        assert result.model is not None
        with (
            tempfile.TemporaryDirectory(prefix="vae-search-") as tmp,
            tf_errors_fail_trial(
                "writing the trial's outputs", lambda why: records.write_failure(trial, why)
            ),
        ):
            paths = write_trial_outputs(
                result.model, self.data, Path(tmp), keep_model=keep_model, seed=seed
            )
            ids = {}
            for name, path in paths.items():
                ids[name] = optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
                )
                self.uploaded.append(ids[name])
        records.write_artifacts(trial, ids)
        return result.val_ssim, result.val_mse

    def discard_artifacts(self) -> None:
        """Remove the current trial's artifacts from the store: a trial that fails while
        storing keeps none (they would fill a full disk further, and nothing reads them)."""
        for artifact_id in self.uploaded:
            with contextlib.suppress(Exception):
                self.artifact_store.remove(artifact_id)
        self.uploaded = []
