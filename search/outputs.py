"""Files a trained model leaves behind: grid, latent means, prior samples, diagnostics, weights.

Each is written under a temporary name and renamed into place (search/atomic.py).

The report reads these files without TensorFlow, so everything it needs from a model is
written here once, when the model is still in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search.atomic import write_into_place
from search.data import MnistData, grid_digits
from search.model import VAE
from search.records.artifacts import (
    ARTIFACT_FILES,
    DIAGNOSTICS,
    GRID,
    GRID_LAYOUT,
    LATENT,
    LATENT_LABELS,
    LATENT_Z_MEAN,
    MODEL,
    PRIOR_SAMPLES,
)
from search.training import reconstruct

LATENT_DIGITS = 1000  # test digits whose latent means are kept for the latent-space plot


def tile(images: np.ndarray, columns: int = GRID_LAYOUT.columns) -> np.ndarray:
    """(n, 28, 28[, 1]) images in [0, 1] -> one uint8 mosaic, `columns` digits wide."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28)
    rows = -(-len(images) // columns)
    mosaic = np.zeros((rows * 28, columns * 28), dtype=np.float32)
    for i, digit in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = digit
    return (np.clip(mosaic, 0, 1) * 255).round().astype(np.uint8)


def comparison_grid(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Originals on the left, reconstructions on the right, a white gap between (GRID_LAYOUT)."""
    left, right = tile(originals), tile(reconstructions)
    gap = np.full((left.shape[0], GRID_LAYOUT.gap), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def write_png(pixels: np.ndarray, path: Path) -> Path:
    write_into_place(path, lambda target: Image.fromarray(pixels, mode="L").save(target))
    return path


def write_trial_outputs(
    vae: VAE, data: MnistData, out_dir: Path, *, keep_model: bool, seed: int = 0
) -> dict[str, Path]:
    """Write grid.png, latent.npz, prior_samples.png, diagnostics.json [and model.weights.h5].

    Returns their paths by artifact name (search.records.ARTIFACT_FILES).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / file for name, file in ARTIFACT_FILES.items()}
    digits = grid_digits(data)
    paths = {GRID: write_png(comparison_grid(digits, reconstruct(vae, digits)), files[GRID])}

    from search.vae_diagnostics import encode, measure_latent_use

    # One pass of the encoder over the test digits serves the latent plot and the diagnostics
    # (it used to run once for each); float32 -> float64 -> float32 is exact, so the stored
    # latent means are the encoder's own numbers.
    images = data.test.images[:LATENT_DIGITS]
    encoded = encode(vae, images)
    paths[LATENT] = files[LATENT]
    latent: dict[str, Any] = {
        LATENT_Z_MEAN: encoded[0].astype(np.float32),
        LATENT_LABELS: data.test.labels[:LATENT_DIGITS],
    }
    write_into_place(paths[LATENT], lambda target: np.savez_compressed(target, **latent))

    z = np.random.default_rng(seed).standard_normal((100, vae.params["latent_dim"]))
    samples = np.asarray(vae.decoder(z.astype(np.float32)))
    paths[PRIOR_SAMPLES] = write_png(tile(samples), files[PRIOR_SAMPLES])

    # Active units, KL per dimension and the test ELBO split, on the same test digits.
    paths[DIAGNOSTICS] = files[DIAGNOSTICS]
    diagnostics = measure_latent_use(vae, images, seed=seed, encoded=encoded)
    text = json.dumps(diagnostics)
    write_into_place(paths[DIAGNOSTICS], lambda target: target.write_text(text))

    if keep_model:
        paths[MODEL] = files[MODEL]
        write_into_place(paths[MODEL], vae.save_weights)
    return paths
