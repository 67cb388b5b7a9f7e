"""What an artifact folder holds: each artifact's name and file, the grid's layout, the latent
codes' arrays and the diagnostics' fields. Written by search.outputs (and search.vae_diagnostics),
read by search.report.artifacts and the report, which never import TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

# -- artifacts: name -> file a trial uploads --------------------------------------------------
GRID = "grid"  # originals | gap | reconstructions (GRID_LAYOUT)
LATENT = "latent"  # npz: LATENT_Z_MEAN (n, k) float32, LATENT_LABELS (n,)
PRIOR_SAMPLES = "prior_samples"
DIAGNOSTICS = "diagnostics"  # json: active units, KL per dimension, ELBO split
MODEL = "model"  # weights, kept per --keep-models
ARTIFACT_FILES = {
    GRID: "grid.png",
    LATENT: "latent.npz",
    PRIOR_SAMPLES: "prior_samples.png",
    DIAGNOSTICS: "diagnostics.json",
    MODEL: "model.weights.h5",
}
LATENT_Z_MEAN = "z_mean"
LATENT_LABELS = "labels"


class LatentUse(TypedDict):
    """Active units and KL per latent dimension (search.vae_diagnostics.latent_use)."""

    latent_dim: int
    active_units: int
    z_mean_variance: list[float]
    kl_per_dim: list[float]
    kl: float


class LatentDiagnostics(LatentUse):
    """The `diagnostics` artifact (JSON): latent use and the test ELBO split."""

    n_images: int
    loss: str
    beta: float
    reconstruction: float
    negative_elbo: float
    active_threshold: float


# What the report needs of a diagnostics artifact; one without these is not read.
DIAGNOSTICS_NEEDED = ("latent_dim", "active_units", "kl", "reconstruction", "loss", "beta")


def read_diagnostics(data: bytes | None) -> dict[str, Any] | None:
    """A `diagnostics` artifact's content, None when absent, not JSON or lacking a field the
    report needs (DIAGNOSTICS_NEEDED)."""
    if data is None:
        return None
    try:
        found = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(found, dict) or not all(k in found for k in DIAGNOSTICS_NEEDED):
        return None
    return found


# -- the reconstruction grid's layout ----------------------------------------------------------
@dataclass(frozen=True)
class GridLayout:
    """The `grid` artifact: originals (a `columns` x `rows` mosaic of 28-px digits), a white
    gap of `gap` px, then the reconstructions in the same mosaic."""

    digit: int = 28
    columns: int = 10
    rows: int = 10
    gap: int = 8

    @property
    def half_width(self) -> int:
        return self.digit * self.columns

    @property
    def height(self) -> int:
        return self.digit * self.rows

    @property
    def width(self) -> int:
        return 2 * self.half_width + self.gap

    def halves(self, width: int, height: int) -> tuple[tuple[int, int, int, int], ...] | None:
        """Crop boxes (left, top, right, bottom) of originals and reconstructions in an image of
        this size, or None when the image is not this layout (then it is shown whole).

        A grid written without the gap (as by older fixtures) splits down the middle."""
        if height <= 0:
            return None
        half = (width - self.gap) // 2
        if width == 2 * half + self.gap and half * self.rows == height * self.columns:
            return (0, 0, half, height), (width - half, 0, width, height)
        if abs(width - 2 * height) <= 2:  # two squares side by side, no gap
            half = width // 2
            return (0, 0, half, height), (width - half, 0, width, height)
        return None


GRID_LAYOUT = GridLayout()
