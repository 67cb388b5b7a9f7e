"""One trial: suggest a configuration, train it with the pruner's epoch hook, store its
curve, metrics and artifacts, and return (SSIM, MSE)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search import space as search_space
from search.pruning import prune_reason
from search.run.budget import claim_budget
from search.run.options import RunOptions
from search.run.process import STOP
from search.run.setup import epochs, pruner_config, training_config, worker_name


def dominated_by_any(values: list[float], trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Is (ssim, mse) dominated by a completed trial: no worse in both and better in one?"""
    ssim, mse = values
    for other in trials:
        o_ssim, o_mse = other.values
        if o_ssim >= ssim and o_mse <= mse and (o_ssim > ssim or o_mse < mse):
            return True
    return False


def is_designed(trial: optuna.Trial) -> bool:
    """Was this trial enqueued (a sweep, a repeat, a confirmation run, anything a user enqueues)?

    Optuna marks every enqueued trial with the system attr `fixed_params`; a retry of a failed
    trial carries its original's system attrs, so it is designed exactly when the original was.
    Designed trials are experiments: they are never pruned.
    """
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return "fixed_params" in frozen.system_attrs


class Objective:
    """Train the configuration a trial suggests; store curve, metrics and artifacts."""

    def __init__(
        self,
        options: RunOptions,
        space: search_space.SearchSpace,
        data: Any,
        artifact_store: Any,
        target_total: int,
    ) -> None:
        self.options = options
        self.space = space
        self.data = data
        self.artifact_store = artifact_store
        self.target_total = target_total
        self.epochs = epochs(options)
        self.pruner = pruner_config(options, self.epochs) if options.pruning else None

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        try:
            return self._train_and_store(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM) during the trial")
            raise

    def _train_and_store(self, trial: optuna.Trial) -> tuple[float, float]:
        # Imported here: TensorFlow starts only in a process that trains.
        from search.outputs import write_trial_outputs
        from search.training import TrainingFailed, tf_errors_fail_trial, train_vae

        study = trial.study
        STOP.check()
        claim_budget(study, trial, self.target_total)
        params = search_space.suggest_params(trial, self.space)
        params["predictor"] = self.options.predictor
        designed = is_designed(trial)
        if designed:
            trial.set_user_attr("designed", True)
        seed = self.options.seed + trial.number
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker", worker_name())
        trial.set_user_attr("epochs_planned", self.epochs)

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
            result = train_vae(params, self.data, training_config(self.options, seed), on_epoch)
        except TrainingFailed as failure:
            trial.set_user_attr("curve", failure.curve)
            trial.set_user_attr("epochs_run", len(failure.curve))
            trial.set_user_attr("fail_reason", failure.reason)
            raise

        for key, value in result.summary().items():
            trial.set_user_attr(key, value)
        if result.stopped_reason:
            trial.set_user_attr("pruned_reason", result.stopped_reason)
            trial.set_user_attr("pruned_at_epoch", result.epochs_run)
            raise optuna.TrialPruned(result.stopped_reason)
        if not (math.isfinite(result.val_ssim) and math.isfinite(result.val_mse)):
            reason = "validation metrics are not finite"
            trial.set_user_attr("fail_reason", reason)
            raise TrainingFailed(reason, result.curve)

        values = [result.val_ssim, result.val_mse]
        keep_model = self.options.keep_models == "all" or (
            self.options.keep_models == "pareto"
            and not dominated_by_any(
                values, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            )
        )
        assert result.model is not None
        with (
            tempfile.TemporaryDirectory(prefix="vae-search-") as tmp,
            tf_errors_fail_trial(
                "writing the trial's outputs", lambda why: trial.set_user_attr("fail_reason", why)
            ),
        ):
            paths = write_trial_outputs(
                result.model, self.data, Path(tmp), keep_model=keep_model, seed=seed
            )
            ids = {
                name: optuna.artifacts.upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
                )
                for name, path in paths.items()
            }
        trial.set_user_attr("artifacts", ids)
        return result.val_ssim, result.val_mse
