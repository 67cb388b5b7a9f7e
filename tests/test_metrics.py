"""The fast batched SSIM agrees with scikit-image's definition to 1e-4 per image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from search.metrics import gaussian_taps, mse_per_image, ssim_per_image


def _reference(a, b):
    return np.array(
        [
            structural_similarity(
                x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for x, y in zip(a, b, strict=True)
        ]
    )


def test_window_is_eleven_taps():
    taps = gaussian_taps()
    assert len(taps) == 11 and taps.sum() == pytest.approx(1.0)


def test_ssim_matches_skimage_on_real_digits(mnist):
    originals = mnist.test.images[:200, ..., 0].astype(np.float64)
    rng = np.random.default_rng(0)
    noisy = np.clip(originals + rng.normal(0, 0.15, originals.shape), 0, 1)
    blurred = np.stack([gaussian_filter(x, 1.0) for x in originals])
    shifted = np.roll(originals, 2, axis=2)
    for other in (noisy, blurred, shifted, originals):
        fast, ref = ssim_per_image(originals, other), _reference(originals, other)
        assert np.abs(fast - ref).max() <= 1e-4
    assert ssim_per_image(originals[:5], originals[:5]) == pytest.approx(np.ones(5))


def test_ssim_matches_skimage_on_random_images():
    rng = np.random.default_rng(1)
    a = rng.random((100, 28, 28))
    b = rng.random((100, 28, 28))
    c = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert np.abs(ssim_per_image(a, b) - _reference(a, b)).max() <= 1e-4
    assert np.abs(ssim_per_image(a, c) - _reference(a, c)).max() <= 1e-4


def test_ssim_accepts_channel_axis_and_float32(mnist):
    x = mnist.test.images[:10]
    y = np.clip(x + 0.1, 0, 1).astype(np.float32)
    assert np.allclose(ssim_per_image(x, y), ssim_per_image(x[..., 0], y[..., 0]))


def test_mse_per_image():
    a = np.zeros((3, 28, 28, 1))
    b = np.full((3, 28, 28, 1), 0.5)
    b[1] = 0.0
    assert mse_per_image(a, b) == pytest.approx([0.25, 0.0, 0.25])
