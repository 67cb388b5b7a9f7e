"""VAE diagnostics: active units, KL per dimension, the ELBO split, and what the report says."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from search import records
from search.configurations import Run, group_runs
from search.report.artifacts import ArtifactReader
from search.report.latent_use import latent_use_info
from search.report.trials import Objective, StudyRecords, TrialRecord
from search.vae_diagnostics import latent_use, measure_latent_use


def test_active_units_and_kl_per_dimension_on_hand_made_codes():
    rng = np.random.default_rng(0)
    n = 4000
    z_mean = np.stack(
        [
            rng.standard_normal(n),  # varies: active
            np.full(n, 0.3),  # constant: inactive
            0.05 * rng.standard_normal(n),  # variance 0.0025 < 0.01: inactive
            0.2 * rng.standard_normal(n),  # variance 0.04 > 0.01: active
        ],
        axis=1,
    )
    z_log_var = np.zeros_like(z_mean)
    use = latent_use(z_mean, z_log_var)
    assert use["latent_dim"] == 4 and use["active_units"] == 2
    # log-variance 0: KL of each dimension is mu^2 / 2 on average
    assert use["kl_per_dim"] == pytest.approx(list((z_mean**2 / 2).mean(axis=0)), rel=1e-12)
    assert use["kl"] == pytest.approx(sum(use["kl_per_dim"]))
    # a posterior equal to the prior costs nothing
    assert latent_use(np.zeros((10, 3)), np.zeros((10, 3)))["kl"] == 0.0


def test_elbo_split_matches_the_models_own_loss_terms(mnist):
    """The KL and reconstruction terms agree with the VAE's compute_loss on the same z."""
    import keras

    from search.training import TrainConfig, train_vae

    params = {"latent_dim": 4, "n_layers": 1, "filters": 8, "dense_units": 16, "loss": "bce"}
    config = TrainConfig(
        epochs=1, batch_size=64, validation_subset=100, train_eval_subset=100, test_eval_subset=100
    )
    vae = train_vae(params, mnist, config).model
    images = mnist.test.images[:300]
    found = measure_latent_use(vae, images, seed=3)
    assert found["n_images"] == 300 and found["loss"] == "bce" and len(found["kl_per_dim"]) == 4
    assert 0 <= found["active_units"] <= 4
    assert found["negative_elbo"] == pytest.approx(found["reconstruction"] + found["kl"])

    z_mean, z_log_var = (np.asarray(t) for t in vae.encoder(images))
    kl = -0.5 * np.sum(1 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=1).mean()
    assert found["kl"] == pytest.approx(float(kl), rel=1e-4)
    # Same posterior sample as measure_latent_use draws (its seed), decoded, scored by Keras.
    eps = np.random.default_rng(3).standard_normal(z_mean.shape)
    z = (z_mean + np.exp(0.5 * z_log_var) * eps).astype(np.float32)
    decoded = vae.decoder(z)
    per_pixel = keras.losses.binary_crossentropy(images, decoded)
    keras_reconstruction = float(np.asarray(per_pixel).reshape(len(images), -1).sum(axis=1).mean())
    assert found["reconstruction"] == pytest.approx(keras_reconstruction, rel=1e-4)


def test_every_trained_trial_stores_diagnostics_consistent_with_its_latent_codes(smoke_study):
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    reader = ArtifactReader(smoke_study.artifacts)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    for trial in complete:
        ids = records.trial_attrs(trial)["artifacts"]
        stored = json.loads(reader.read(ids["diagnostics"]))
        assert stored["latent_dim"] == trial.params["latent_dim"]
        latent = reader.read(ids["latent"])
        with np.load(io.BytesIO(latent)) as npz:
            z_mean = npz["z_mean"].astype(np.float64)
        # the same 1,000 test digits: the stored count is recomputable from the latent codes
        assert stored["n_images"] == len(z_mean)
        assert stored["active_units"] == int((z_mean.var(axis=0) > 0.01).sum())
        assert stored["kl"] >= 0 and stored["reconstruction"] > 0


def _records(tmp_path: Path, sweep: dict[int, list[int]]) -> tuple[StudyRecords, ArtifactReader]:
    """A k sweep with two seeds per k; `sweep` maps k to the active units of its runs."""
    store = tmp_path / "artifacts"
    store.mkdir()
    trials = []
    number = 0
    for k, units in sweep.items():
        for active in units:
            artifact = f"diag-{number}"
            (store / artifact).write_text(
                json.dumps(
                    {
                        "latent_dim": k,
                        "active_units": active,
                        "kl": 2.0 * active,
                        "kl_per_dim": [2.0] * active + [0.001] * (k - active),
                        "reconstruction": 100.0 - active,
                        "loss": "bce",
                        "beta": 1.0,
                        "n_images": 1000,
                    }
                )
            )
            trials.append(
                TrialRecord(
                    number=number,
                    state="COMPLETE",
                    values=(0.5 + 0.01 * active, 0.05 - 0.001 * active),
                    params={"latent_dim": k, "n_layers": 2},
                    attrs={
                        "artifacts": {"diagnostics": artifact},
                        "sweep": {"name": "latent_dim", "value": k},
                        "seed": number,
                    },
                )
            )
            number += 1
    records = StudyRecords(
        name="k-sweep",
        objectives=(Objective(0, "SSIM", True), Objective(1, "MSE", False)),
        trials=tuple(trials),
        attrs={},
        storage_url=None,
    )
    return records, ArtifactReader(store)


def test_k_sweep_table_and_sentences_say_which_dimensions_are_unused(tmp_path):
    records, reader = _records(tmp_path, {2: [2, 2], 4: [4, 4], 8: [5, 6], 16: [6, 6]})
    configurations = group_runs(Run(t.number, t.params, t.values) for t in records.complete)
    info = latent_use_info(records, reader, configurations[-1:], configurations)
    assert [r.latent_dim for r in info.k_sweep] == [2, 4, 8, 16]
    assert [r.active_units for r in info.k_sweep] == [(2, 2), (4, 4), (5, 6), (6, 6)]
    assert info.k_sweep[2].kl == pytest.approx(11.0)  # mean of 10 and 12
    assert info.sentences == [
        "k = 2 uses both its dimensions in its 2 runs.",
        "k = 4 uses all 4 of its dimensions in its 2 runs.",
        "k = 8 uses 5 or 6 active units in its 2 runs: at least 2 of its 8 dimensions are "
        "unused (z_mean barely moves with the input there).",
        "k = 16 uses 6 active units in its 2 runs: at least 10 of its 16 dimensions are "
        "unused (z_mean barely moves with the input there).",
        "No k above 8 uses more dimensions: the most active units in any run is 6, first "
        "reached at k = 8, so the larger k add unused dimensions, not capacity.",
    ]
    assert len(info.points) == 8 and info.n_images == 1000


def test_seed_dependent_use_and_a_sweep_that_keeps_growing(tmp_path):
    records, reader = _records(tmp_path, {2: [1, 2], 4: [3, 3]})
    configurations = group_runs(Run(t.number, t.params, t.values) for t in records.complete)
    info = latent_use_info(records, reader, [], configurations)
    assert info.sentences == [
        "k = 2 uses 1 or 2 active units in its 2 runs: whether all its dimensions are used "
        "depends on the seed.",
        "k = 4 uses 3 active units in its 2 runs: at least 1 of its 4 dimensions is unused "
        "(z_mean barely moves with the input there).",
    ]  # no plateau sentence: the largest k uses the most dimensions


def test_report_without_diagnostics_says_so(tmp_path):
    records, _ = _records(tmp_path, {2: [2]})
    info = latent_use_info(records, ArtifactReader(tmp_path / "nowhere"), [], [])
    assert info.note is not None and not info.points and not info.sentences


def test_report_shows_latent_usage_and_rate_distortion(smoke_study, tmp_path):
    from search.report import report_context, write_report

    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    page = write_report(
        study, tmp_path, formats=("html",), artifact_store_dir=smoke_study.artifacts
    )["html"].read_text()
    context = report_context(study, smoke_study.artifacts)
    assert context.latent_use.front and context.latent_use.points
    assert 'data-table="front"' in page
    assert "rate-distortion" in page
    for sentence in context.latent_use.sentences:
        assert sentence in page


def test_trial_outputs_encode_once_and_store_what_the_encoder_gives(mnist, tmp_path):
    """latent.npz and diagnostics.json from one encoder pass equal separate passes exactly."""
    from search import vae_diagnostics
    from search.outputs import LATENT_DIGITS, write_trial_outputs
    from search.training import TrainConfig, train_vae

    params = {"latent_dim": 3, "n_layers": 1, "filters": 4, "dense_units": 8, "loss": "mse"}
    config = TrainConfig(
        epochs=1, batch_size=64, validation_subset=50, train_eval_subset=50, test_eval_subset=50
    )
    vae = train_vae(params, mnist, config).model
    calls = []
    real_encode = vae_diagnostics.encode

    def counted(*args, **kwargs):
        calls.append(1)
        return real_encode(*args, **kwargs)

    vae_diagnostics.encode = counted
    try:
        paths = write_trial_outputs(vae, mnist, tmp_path, keep_model=False, seed=5)
    finally:
        vae_diagnostics.encode = real_encode
    assert len(calls) == 1
    images = mnist.test.images[:LATENT_DIGITS]
    separate = np.concatenate(
        [np.asarray(vae.encoder(images[i : i + 500])[0]) for i in range(0, len(images), 500)]
    )
    with np.load(paths["latent"]) as stored:
        assert stored["z_mean"].dtype == np.float32
        assert np.array_equal(stored["z_mean"], separate)
    assert json.loads(paths["diagnostics"].read_text()) == json.loads(
        json.dumps(measure_latent_use(vae, images, seed=5))
    )
