"""`python -m search export`: the chosen model leaves as plain Keras files and a config.json.

    DIR/encoder.keras   image batch (n, 28, 28, 1) in [0, 1] -> [z_mean, z_log_var], each (n, k)
    DIR/decoder.keras   z (n, k) -> pixel means (n, 28, 28, 1) in [0, 1]
    DIR/config.json     parameters, seeds, budget, data provenance, metrics, study and trial

The two .keras files hold only Keras' own layers (the package's `VAE` class and its sampling
layer stay behind), so `keras.saving.load_model` opens them in any Python with Keras 3,
without vae-search. The reconstruction the study scored is `decoder(encoder(x)[0])`.

Which model: the configuration the report recommends (the same rule: front and knee on
seed means), exported from its representative run: of the runs that kept their weights, the
one nearest the configuration's mean (`search.report.representative`), not the luckiest
seed; or trial N with `--trial`. config.json holds that run's own metrics under `metrics` and
the configuration's mean, SD and n under `configuration`, so neither is mistaken for the other.
When no run of it kept its weights, the trial is trained again from its stored parameters,
seed and the study's budget and data, and config.json says so (`weights: "retrained"`),
with the retrained run's own metrics beside the stored ones.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from search import defaults
from search import records as stored
from search.arguments import MAX_COUNT
from search.atomic import write_into_place
from search.configurations import choose, pareto_front
from search.errors import UsageError
from search.paths import OutsideFolder, artifact_file
from search.records.artifacts import MODEL
from search.report.representative import nearest_the_mean
from search.report.trials import StudyRecords, TrialRecord, read_study
from search.summaries import study_summary

ENCODER_FILE = "encoder.keras"
DECODER_FILE = "decoder.keras"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportPlan:
    """What will be exported, decided before anything is written or trained."""

    trial: TrialRecord
    numbers: tuple[int, ...]  # every run of its configuration (trial numbers)
    params: dict[str, Any]  # full model parameters (search space + fixed)
    weights_path: Path | None  # None: no run kept its weights, retrain
    chosen_by: str


def _weights_path(trial: TrialRecord, artifacts_dir: Path) -> Path | None:
    model_id = stored.read_artifact_ids(trial.attrs).get(MODEL)
    if not isinstance(model_id, str) or not model_id:
        return None
    try:
        return artifact_file(artifacts_dir, model_id)
    except OutsideFolder:
        logging.getLogger(__name__).warning(
            "warning: trial %d's stored weights %r lie outside the artifact folder %s: not used",
            trial.number,
            model_id,
            artifacts_dir,
        )
        return None


def _model_params(records: StudyRecords, trial: TrialRecord) -> dict[str, Any]:
    return {**stored.read_fixed_params(records.attrs), **trial.params}


def plan_export(
    records: StudyRecords, artifacts_dir: Path, trial_number: int | None = None
) -> ExportPlan:
    """Pick the trial to export (the recommendation, or `trial_number`); raise UsageError."""
    if trial_number is not None:
        known = {t.number: t for t in records.trials}
        if trial_number not in known:
            raise UsageError(f"study {records.name!r} has no trial {trial_number}")
        trial = known[trial_number]
        if trial.state != "COMPLETE" or trial.values is None:
            raise UsageError(
                f"trial {trial_number} is {trial.state.lower()}, not complete: only a "
                "completed training can be exported"
            )
        configuration = next(c for c in records.configurations() if trial_number in c.numbers)
        return ExportPlan(
            trial=trial,
            numbers=configuration.numbers,
            params=_model_params(records, trial),
            weights_path=_weights_path(trial, artifacts_dir),
            chosen_by=f"--trial {trial_number}",
        )
    configurations = records.configurations()
    front = pareto_front(configurations, records.maximize)
    choice = choose(front, records.maximize, configurations)
    if choice is None:
        raise UsageError(f"study {records.name!r} has no completed trial to export")
    # nearest the configuration's mean first: the export stands for the configuration
    runs = [records.trial(n) for n in nearest_the_mean(choice.configuration)]
    kept = [(t, p) for t in runs if (p := _weights_path(t, artifacts_dir)) is not None]
    trial, weights = kept[0] if kept else (runs[0], None)
    n = choice.configuration.n
    which = "its only run" if n == 1 else f"of its {n} runs the one nearest their mean"
    if n > 1 and kept and kept[0][0] is not runs[0]:
        which = f"of its {n} runs the one nearest their mean among those that kept their weights"
    return ExportPlan(
        trial=trial,
        numbers=choice.configuration.numbers,
        params=_model_params(records, trial),
        weights_path=weights,
        chosen_by=f"the report's recommendation ({choice.method}); trial {trial.number}, {which}",
    )


def configuration_metrics(records: StudyRecords, numbers: tuple[int, ...]) -> dict[str, Any]:
    """The configuration's mean, SD (ddof 1, None for one run) and n per split and metric."""
    runs = [records.trial(n) for n in numbers]
    out: dict[str, Any] = {"n": len(runs), "trials": list(numbers)}
    for split, metrics in _metrics_per_run(runs).items():
        out[split] = {}
        for name, values in metrics.items():
            found = [v for v in values if v is not None]
            out[split][name] = {
                "mean": float(np.mean(found)) if found else None,
                "sd": float(np.std(found, ddof=1)) if len(found) >= 2 else None,
                "n": len(found),
            }
    return out


def _metrics_per_run(runs: list[TrialRecord]) -> dict[str, dict[str, list[float | None]]]:
    per: dict[str, dict[str, list[float | None]]] = {}
    for trial in runs:
        for split, metrics in _metrics(trial).items():
            for name, value in metrics.items():
                per.setdefault(split, {}).setdefault(name, []).append(value)
    return per


def _metrics(trial: TrialRecord) -> dict[str, dict[str, float | None]]:
    """The stored measurements: validation (the objectives), test (held out) and train."""
    values = trial.values or (None, None)
    return {
        "validation": {"ssim": values[0], "mse": values[1]},
        **{
            split: {m: stored.read_metric(trial.attrs, split, m) for m in stored.METRICS}
            for split in ("test", "train")
        },
    }


def _retrain(records: StudyRecords, plan: ExportPlan) -> tuple[Any, dict[str, Any]]:
    """Train the plan's trial again from its parameters, seed, the study's budget and data."""
    from search.data import load_mnist
    from search.training import TrainConfig, TrainingFailed, train_vae

    provenance = stored.read_data(records.attrs)
    budget = stored.read_budget(records.attrs)
    seed = stored.read_seed(plan.trial.attrs)
    if provenance is None or budget is None or seed is None:
        raise UsageError(
            f"trial {plan.trial.number} kept no weights and the study lacks the data, budget "
            "or seed records needed to train it again"
        )
    source = provenance.get("source")
    source = provenance.get("path") if source == "file" else source
    counts = provenance.get("counts") or {}
    # The budget records the flag; studies older than that record only the unlabeled count.
    extra_unlabeled = budget.get("extra_unlabeled", int(counts.get("unlabeled", 0)) > 0)
    # Checked before any data is loaded: a stored batch size of 0 failed deep in tf.data.
    subset = _stored_count(budget, "subset", None)
    preset = defaults.PRESETS.get(str(budget.get("preset")), defaults.PRESETS["full"])
    config = TrainConfig(
        epochs=_stored_count(budget, "epochs", None),
        batch_size=_stored_count(budget, "batch_size", None),
        seed=seed,
        validation_subset=_stored_count(budget, "validation_subset", preset.validation_subset),
        train_eval_subset=preset.train_eval_subset,
        test_eval_subset=preset.test_eval_subset,
    )
    print(
        f"trial {plan.trial.number} kept no weights: training it again from its "
        f"parameters and seed {seed}",
        file=sys.stderr,
        flush=True,
    )
    data = load_mnist(
        str(source),
        seed=int(provenance.get("seed", 0)),
        subset=subset,
        extra_unlabeled=bool(extra_unlabeled),
    )
    try:
        result = train_vae(plan.params, data, config)
    except TrainingFailed as failure:
        raise UsageError(
            f"retraining trial {plan.trial.number} failed: {failure.reason}"
        ) from failure
    measured = {
        "validation": {"ssim": result.val_ssim, "mse": result.val_mse},
        "test": {"ssim": result.test_ssim, "mse": result.test_mse},
        "train": {"ssim": result.train_ssim, "mse": result.train_mse},
        "epochs": result.epochs_run,
        "device": result.device,
    }
    return result.model, measured


def _stored_count(budget: dict[str, Any], key: str, default: int | None) -> int:
    """A count from the study's stored budget, checked: a whole number of at least 1."""
    value = budget.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise UsageError(
            f"the study's stored budget has {key} {value!r}, not a whole number from 1 to "
            f"{MAX_COUNT}, so its trials cannot be trained again: export a trial that kept "
            "its weights (--trial N)"
        )
    return value


def load_weights_whole(vae: Any, weights: Path, stored_at: Path, number: int) -> None:
    """Load the stored weights into `vae`, all of them, or raise UsageError: a truncated file
    gave h5py's traceback, and Keras may load part of a file saved from another architecture,
    leaving the rest at their fresh initial values with no more than a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            vae.load_weights(weights)
        except (OSError, ValueError, KeyError, TypeError) as err:
            problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(_weights_refused(stored_at, number, problem)) from None
    skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)]
    if skipped:
        raise UsageError(_weights_refused(stored_at, number, skipped[0].split(":")[0]))


def _weights_refused(stored_at: Path, number: int, problem: str) -> str:
    return (
        f"trial {number}'s stored weights {stored_at} do not load into its model ({problem}): "
        "the file is truncated or from another model; move it away and export trains the "
        "trial again from its parameters and seed"
    )


def export_config(
    study: optuna.Study,
    records: StudyRecords,
    plan: ExportPlan,
    storage_url: str,
    retrained: dict[str, Any] | None,
) -> dict[str, Any]:
    """config.json's content: everything needed to know what the two .keras files are."""
    trial = plan.trial
    seeds = [s for n in plan.numbers if (s := stored.read_seed(records.trial(n).attrs)) is not None]
    return {
        "format_version": FORMAT_VERSION,
        "study": study_summary(study, storage_url),
        "trial": trial.number,
        "configuration_trials": list(plan.numbers),
        "chosen_by": plan.chosen_by,
        "params": plan.params,
        "seed": stored.read_seed(trial.attrs),
        "configuration_seeds": seeds,
        "weights": "retrained" if retrained is not None else "stored",
        # this run's own measurements, and its configuration's over all its runs
        "metrics": _metrics(trial),
        "configuration": configuration_metrics(records, plan.numbers),
        "retrained_metrics": retrained,
        # as stored, whatever it holds: config.json repeats the study's records
        "budget": records.attrs.get(stored.BUDGET),
        "data": records.attrs.get(stored.DATA),
        "files": {
            "encoder": {
                "file": ENCODER_FILE,
                "input": "images (n, 28, 28, 1), float32 in [0, 1]",
                "outputs": ["z_mean (n, latent_dim)", "z_log_var (n, latent_dim)"],
            },
            "decoder": {
                "file": DECODER_FILE,
                "input": "z (n, latent_dim)",
                "output": "pixel means (n, 28, 28, 1) in [0, 1]",
            },
            "reconstruction": "decoder(encoder(images)[0]): the mean at z = z_mean, as scored",
        },
    }


def export_model(
    study: optuna.Study,
    out_dir: Path,
    artifacts_dir: Path,
    storage_url: str,
    trial_number: int | None = None,
) -> dict[str, Any]:
    """Write encoder.keras, decoder.keras and config.json into out_dir; return the config."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a folder")
    records = read_study(study)
    plan = plan_export(records, artifacts_dir, trial_number)

    retrained: dict[str, Any] | None = None
    if plan.weights_path is not None:
        from search.model import build_vae
        from search.training import configure_device

        configure_device()
        vae = build_vae(plan.params, seed=stored.read_seed(plan.trial.attrs))
        # The store keeps the file under a bare id; Keras picks the format by extension.
        with tempfile.TemporaryDirectory(prefix="vae-search-export-") as tmp:
            weights = Path(tmp) / "model.weights.h5"
            shutil.copyfile(plan.weights_path, weights)
            load_weights_whole(vae, weights, plan.weights_path, plan.trial.number)
    else:
        vae, retrained = _retrain(records, plan)

    config = export_config(study, records, plan, storage_url, retrained)
    out_dir.mkdir(parents=True, exist_ok=True)
    # config.json goes first and comes back last: a folder that holds it holds a whole export
    # (an earlier export's config.json beside half-replaced models would pass for one).
    (out_dir / CONFIG_FILE).unlink(missing_ok=True)
    write_into_place(out_dir / ENCODER_FILE, vae.encoder.save)
    write_into_place(out_dir / DECODER_FILE, vae.decoder.save)
    text = json.dumps(config, indent=2, default=str) + "\n"
    write_into_place(out_dir / CONFIG_FILE, lambda path: path.write_text(text))
    return config
