"""Model shapes over the whole default search space, and the loss terms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from search.errors import UsageError
from search.model import build_vae, check_params, count_params
from search.space import default_space


def _corners():
    space = default_space()
    # every layer count, the extremes of k and of the node counts, both losses
    for n_layers, latent_dim, (filters, dense), loss in itertools.product(
        range(space["n_layers"].low, space["n_layers"].high + 1),
        (space["latent_dim"].low, space["latent_dim"].high),
        (
            (min(space["filters"].choices), min(space["dense_units"].choices)),
            (max(space["filters"].choices), max(space["dense_units"].choices)),
        ),
        space["loss"].choices,
    ):
        yield {
            "latent_dim": latent_dim,
            "n_layers": n_layers,
            "filters": filters,
            "dense_units": dense,
            "loss": loss,
        }


@pytest.mark.parametrize("params", list(_corners()), ids=lambda p: "-".join(map(str, p.values())))
def test_every_configuration_in_the_space_maps_28x28_to_28x28(params, mnist):
    vae = build_vae(params)
    images = mnist.validation.images[:4]
    out = vae(images, training=False)
    assert tuple(out["reconstruction"].shape) == (4, 28, 28, 1)
    assert tuple(out["z_mean"].shape) == (4, params["latent_dim"])
    recon = np.asarray(out["reconstruction"])
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    loss = float(vae.compute_loss(x=images, y=None, y_pred=vae(images, training=True)))
    assert np.isfinite(loss) and loss > 0


def test_decoder_mirrors_encoder_and_more_nodes_means_more_parameters():
    small = build_vae({"latent_dim": 2, "n_layers": 3, "filters": 8, "dense_units": 16})
    big = build_vae({"latent_dim": 2, "n_layers": 3, "filters": 32, "dense_units": 16})
    conv = lambda m: [l for l in m.layers if "conv" in l.name]  # noqa: E731, E741
    assert len(conv(small.encoder)) == 3
    assert len(conv(small.decoder)) == 3 + 1  # mirrored transposed convs + the output conv
    assert count_params(big) > count_params(small)


def test_predictor_head_adds_its_loss_terms(mnist):
    vae = build_vae({"latent_dim": 4, "n_layers": 1, "predictor": True})
    images, labels = mnist.train.images[:8], mnist.train.labels[:8]
    vae.compute_loss(x=images, y=labels, y_pred=vae(images, training=True))
    names = [m.name for m in vae.metrics]
    assert {"predictor_loss", "predictor_accuracy", "kl_loss", "reconstruction_loss"} <= set(names)
    assert vae(images)["digit_probs"].shape == (8, 10)


def test_evaluation_reconstruction_is_deterministic(mnist):
    vae = build_vae({"latent_dim": 4, "n_layers": 2})
    images = mnist.validation.images[:5]
    first = np.asarray(vae(images, training=False)["reconstruction"])
    second = np.asarray(vae(images, training=False)["reconstruction"])
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    "bad",
    [
        {"latent_dim": 0},
        {"n_layers": 0},
        {"filters": -1},
        {"loss": "l1"},
        {"beta": -1.0},
        {"latent_dim": 2.5},
        {"colour": 1},
    ],
)
def test_impossible_params_are_refused(bad):
    with pytest.raises(UsageError):
        check_params(bad)
