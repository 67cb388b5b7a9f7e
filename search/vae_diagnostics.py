"""What a VAE practitioner checks after SSIM and MSE, measured on held-out test images.

- Active units (Burda et al. 2016): latent dimension d is active when its posterior mean
  moves with the input, Var_x[E_q(z|x) z_d] > 0.01. A larger k whose extra dimensions are
  inactive has gained nothing: the KL term switched them off (posterior collapse per unit).
- KL per dimension: E_x[KL(q(z_d|x) || N(0, 1))] in nats; their sum is the rate.
- The test ELBO split into its reconstruction term (the training loss's own term: summed
  binary cross-entropy, or squared error / (2 sigma^2), one posterior sample per image) and
  the KL term. The reconstruction term of the two losses has different units, so ELBOs are
  compared only within one loss; beta does not enter (the ELBO is the beta = 1 bound).

`measure_latent_use` needs a trained model; the result is plain JSON, stored per trial as the
`diagnostics` artifact (outputs.py) and read by the report without TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.model import MSE_SIGMA
from search.records.artifacts import LatentDiagnostics, LatentUse

ACTIVE_UNIT_THRESHOLD = 0.01  # variance of z_mean over inputs (Burda et al. 2016)
BATCH = 500


def encode(vae: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z_mean, z_log_var) of `images`, float64 (exact copies of the encoder's float32)."""
    means, log_vars = [], []
    for i in range(0, len(images), BATCH):
        z_mean, z_log_var = vae.encoder(images[i : i + BATCH], training=False)
        means.append(np.asarray(z_mean, dtype=np.float64))
        log_vars.append(np.asarray(z_log_var, dtype=np.float64))
    return np.concatenate(means), np.concatenate(log_vars)


def _reconstruction_term(loss: str, images: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per image, the training loss's reconstruction term (summed over pixels)."""
    x = images.reshape(len(images), -1).astype(np.float64)
    p = decoded.reshape(len(decoded), -1).astype(np.float64)
    if loss == "bce":
        eps = 1e-7  # Keras' clipping, so a saturated pixel is not an infinite loss
        p = np.clip(p, eps, 1 - eps)
        return np.asarray(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1))
    return np.asarray(((x - p) ** 2).sum(axis=1) / (2 * MSE_SIGMA**2))


def latent_use(z_mean: np.ndarray, z_log_var: np.ndarray) -> LatentUse:
    """Active units and KL per dimension from posterior means and log-variances (n, k)."""
    variance = z_mean.var(axis=0)
    kl_per_dim = (0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var)).mean(axis=0)
    return LatentUse(
        latent_dim=int(z_mean.shape[1]),
        active_units=int((variance > ACTIVE_UNIT_THRESHOLD).sum()),
        z_mean_variance=[float(v) for v in variance],
        kl_per_dim=[float(v) for v in kl_per_dim],
        kl=float(kl_per_dim.sum()),
    )


def measure_latent_use(
    vae: Any,
    images: np.ndarray,
    seed: int = 0,
    encoded: tuple[np.ndarray, np.ndarray] | None = None,
) -> LatentDiagnostics:
    """Active units, KL per dimension and the test ELBO split, on `images`.

    `encoded`: `encode(vae, images)` when the caller has it already (it is not computed twice).
    """
    z_mean, z_log_var = encoded if encoded is not None else encode(vae, images)
    use = latent_use(z_mean, z_log_var)
    eps = np.random.default_rng(seed).standard_normal(z_mean.shape)
    z = (z_mean + np.exp(0.5 * z_log_var) * eps).astype(np.float32)
    decoded = np.concatenate(
        [np.asarray(vae.decoder(z[i : i + BATCH], training=False)) for i in range(0, len(z), BATCH)]
    )
    loss = str(vae.params["loss"])
    reconstruction = float(_reconstruction_term(loss, images, decoded).mean())
    return LatentDiagnostics(
        **use,
        n_images=len(images),
        loss=loss,
        beta=float(vae.params["beta"]),
        reconstruction=reconstruction,
        negative_elbo=reconstruction + use["kl"],
        active_threshold=ACTIVE_UNIT_THRESHOLD,
    )
