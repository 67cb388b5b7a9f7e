"""Files a trained model leaves behind: grid, latent means, prior samples, diagnostics, weights.

The report reads these files without TensorFlow, so everything it needs from a model is
written here once, when the model is still in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from search.data import MnistData, grid_digits
from search.model import VAE
from search.training import reconstruct

LATENT_DIGITS = 1000  # test digits whose latent means are kept for the latent-space plot
GAP = 8  # pixels between the originals grid and the reconstructions grid


def tile(images: np.ndarray, columns: int = 10) -> np.ndarray:
    """(n, 28, 28[, 1]) images in [0, 1] -> one uint8 mosaic, `columns` digits wide."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28)
    rows = -(-len(images) // columns)
    mosaic = np.zeros((rows * 28, columns * 28), dtype=np.float32)
    for i, digit in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = digit
    return (np.clip(mosaic, 0, 1) * 255).round().astype(np.uint8)


def comparison_grid(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Originals on the left, reconstructions on the right, a white gap between."""
    left, right = tile(originals), tile(reconstructions)
    gap = np.full((left.shape[0], GAP), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def write_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels, mode="L").save(path)
    return path


def write_trial_outputs(
    vae: VAE, data: MnistData, out_dir: Path, *, keep_model: bool, seed: int = 0
) -> dict[str, Path]:
    """Write grid.png, latent.npz, prior_samples.png, diagnostics.json [and model.weights.h5].

    Returns their paths.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = grid_digits(data)
    paths = {
        "grid": write_png(comparison_grid(digits, reconstruct(vae, digits)), out_dir / "grid.png")
    }

    from search.vae_diagnostics import encode, measure_latent_use

    # One pass of the encoder over the test digits serves the latent plot and the diagnostics
    # (it used to run once for each); float32 -> float64 -> float32 is exact, so the stored
    # latent means are the encoder's own numbers.
    images = data.test.images[:LATENT_DIGITS]
    encoded = encode(vae, images)
    paths["latent"] = out_dir / "latent.npz"
    np.savez_compressed(
        paths["latent"],
        z_mean=encoded[0].astype(np.float32),
        labels=data.test.labels[:LATENT_DIGITS],
    )

    z = np.random.default_rng(seed).standard_normal((100, vae.params["latent_dim"]))
    samples = np.asarray(vae.decoder(z.astype(np.float32)))
    paths["prior_samples"] = write_png(tile(samples), out_dir / "prior_samples.png")

    # Active units, KL per dimension and the test ELBO split, on the same test digits.
    paths["diagnostics"] = out_dir / "diagnostics.json"
    diagnostics = measure_latent_use(vae, images, seed=seed, encoded=encoded)
    paths["diagnostics"].write_text(json.dumps(diagnostics))

    if keep_model:
        paths["model"] = out_dir / "model.weights.h5"
        vae.save_weights(paths["model"])
    return paths
