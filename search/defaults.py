"""Every default of vae-search, once: the CLI's defaults, choices and --help read from here.

Plain values only (no TensorFlow, Keras or Optuna import), so checking a command line stays
fast and a bad option is refused before any heavy library starts. A test checks that the
CLI's parsed defaults equal these and that the library (model, training, run) uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Where a study lives unless told otherwise.
STUDY_NAME = "mnist-vae"
STUDIES_DIR = "studies"  # storage, artifacts and reports, relative to the working folder
DATA_SOURCE = "auto"  # keras MNIST if it can be had, else the bundled subset

# Seeds are numpy/TensorFlow seeds: whole numbers 0..2^32-1.
SEED = 0
SEED_MAX = 2**32 - 1

# `run`
TRIALS = 20  # when neither --trials nor a sweep says how many
PRESET = "full"
SAMPLERS = ("tpe", "nsga2", "random")
SAMPLER = "tpe"
KEEP_MODELS = ("pareto", "all", "none")
KEEP_MODEL = "pareto"
REPEATS = 1  # runs of each sweep configuration
# `run --until-converged` stops once this many finished trials have not moved the seed-mean
# front beyond the seed noise (search/convergence.py); not yet replayed on recorded curves.
CONVERGENCE_WINDOW = 8
CONFIRM = 2  # seeds beyond the first that a front configuration gets at the end of `run`
WORKERS_PER_GPU = 1
# Keras 3 backends that train (KERAS_BACKEND or --backend); TensorFlow is the fastest on a CPU.
BACKENDS = ("tensorflow", "jax", "torch")
BACKEND = "tensorflow"
# The worker launcher names each worker's device here; training reads it for its log line.
ASSIGNED_DEVICE_ENV = "VAE_SEARCH_DEVICE"
# A trial is declared dead GRACE_PERIODS heartbeat intervals after its last heartbeat.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIODS = 4

# `report`, `dashboard`
REPORT_FORMATS = ("html", "pdf")
DASHBOARD_HOST = "127.0.0.1"  # only this machine, unless told
DASHBOARD_PORT = 8080

# The model a `train` without options builds, and the baseline of every one-factor sweep
# (parameters not swept stay here).
LOSS_CHOICES = ("bce", "mse")
MODEL: dict[str, Any] = {
    "latent_dim": 8,
    "n_layers": 2,
    "filters": 32,
    "dense_units": 64,
    "loss": "bce",
    "beta": 1.0,
    "predictor": False,
    "predictor_weight": 1.0,
}
SWEPT_PARAMS = ("latent_dim", "n_layers", "filters", "dense_units", "loss", "beta")
SWEEP_BASELINE: dict[str, Any] = {name: MODEL[name] for name in SWEPT_PARAMS}

# What a model may be built from. The lower bounds are model.check_params'; the upper bounds
# keep one trial's model within a GPU's memory.
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "latent_dim": (1, 512),
    "n_layers": (1, 8),
    "filters": (1, 1024),
    "dense_units": (1, 8192),
    "beta": (0.0, 1000.0),
}

# One training (`train`, and TrainConfig's defaults); a study's trials take the preset's.
TRAIN_EPOCHS = 5
TRAIN_BATCH_SIZE = 64
LEARNING_RATE = 1e-3
VALIDATION_SUBSET = 1000  # validation images scored after every epoch
TRAIN_EVAL_SUBSET = 2000  # training images scored at the end (the bias/variance gap)
TEST_EVAL_SUBSET: int | None = None  # None: the whole test split


@dataclass(frozen=True)
class Preset:
    """How much training a trial gets. `subset=None` means all training images.

    The pruning defaults (rungs at `grace_epochs * eta**i` epochs; the noise and envelope
    guards, 0 = off; see search/pruning.py) were chosen by bench/bench_pruning.py on recorded
    curves, per number of epochs (bench/results/pruning.md).
    """

    epochs: int
    subset: int | None
    batch_size: int
    validation_subset: int
    train_eval_subset: int
    test_eval_subset: int | None
    grace_epochs: int = 2
    eta: int = 3
    noise_margin: float = 0.0
    envelope_min_complete: int = 0


PRESETS = {
    # tests and CI: seconds per trial on a CPU
    "smoke": Preset(
        epochs=2,
        subset=512,
        batch_size=64,
        validation_subset=200,
        train_eval_subset=256,
        test_eval_subset=500,
    ),
    # a CPU laptop: 20 trials in minutes
    "quick": Preset(
        epochs=6,
        subset=4000,
        batch_size=64,
        validation_subset=500,
        train_eval_subset=1000,
        test_eval_subset=2000,
        # bench/results/pruning.md, 6 epochs: one rung, at 3 epochs (true-front loss 2.1% in
        # 96 held-out replays); a rung at 2 stopped winners
        grace_epochs=3,
        eta=3,
    ),
    # the GPU job: all images, up to 30 epochs
    "full": Preset(
        epochs=30,
        subset=None,
        batch_size=128,
        validation_subset=1000,
        train_eval_subset=5000,
        test_eval_subset=None,
        # bench/results/pruning.md, 30 epochs: no rule both saved time and kept the true front
        # on the held-out seeds (the tuning seeds' choice lost it in 29% of the replays); this
        # one, rungs at 4, 8, 16 epochs with the envelope guard, lost it in 3.1% and saves little
        grace_epochs=4,
        eta=2,
        envelope_min_complete=6,
    ),
}
PRESET_PURPOSE = {
    "smoke": "tests",
    "quick": "CPU laptop",
    "full": "GPU",
}
