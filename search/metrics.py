"""Reconstruction quality: MSE and SSIM per image, batched, in float64 on Keras' device.

One SSIM definition everywhere (Wang et al. 2004): Gaussian window of 11 taps, sigma 1.5,
K1 = 0.01, K2 = 0.03, data range 1, population (not sample) covariance, mean over the
window positions that lie fully inside the image. This is what
`skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0)` computes: skimage filters the whole image and
then crops the 5-pixel border, which is exactly a "valid" separable convolution.

The separable filter is written as two matrix products (A @ X @ A.T with A a banded
18x28 matrix), which vectorises over the batch and runs on a GPU unchanged.

Why float64: on Ampere and newer GPUs TensorFlow runs float32 matmuls in TensorFloat-32 by
default (10-bit mantissa), and the blur's products then drift up to ~1e-3 from skimage
(tests/test_metrics.py emulates that rounding). Float64 is never rounded to TF32. It costs
2-3x the time of float32 on this CPU (bench/results/ssim.md), a fraction of a second per
10,000 images.
"""

from __future__ import annotations

import numpy as np

SIGMA = 1.5
TRUNCATE = 3.5  # scipy's default, so the window has 2 * int(3.5 * 1.5 + 0.5) + 1 = 11 taps
K1, K2 = 0.01, 0.03
DATA_RANGE = 1.0


def gaussian_taps(sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _valid_filter_matrix(side: int) -> np.ndarray:
    """Banded matrix whose product with a length-`side` signal is its valid Gaussian filter."""
    taps = gaussian_taps()
    out = side - len(taps) + 1
    matrix = np.zeros((out, side))
    for row in range(out):
        matrix[row, row : row + len(taps)] = taps
    return matrix


def ssim_per_image(a, b, dtype: str = "float64") -> np.ndarray:
    """SSIM of each image pair; inputs (n, h, w) or (n, h, w, 1) in [0, 1]. Returns (n,) float64.

    `dtype` is the compute precision. Keep float64 (the default) for anything that is scored:
    on Ampere and newer GPUs TensorFlow runs float32 matmuls in TensorFloat-32 by default
    (10-bit mantissa), which puts the blur up to ~1e-3 off skimage; float64 is never rounded
    to TF32 (tests/test_metrics.py emulates TF32). float32 exists for the speed comparison in
    bench/bench_ssim.py.
    """
    from keras import ops  # deferred so `search.metrics` imports fast for the report

    from search import backend

    with backend.exact_matmul(dtype) as dtype:
        return _ssim(ops, a, b, dtype)


def _ssim(ops, a, b, dtype: str) -> np.ndarray:
    a = ops.cast(ops.convert_to_tensor(a), dtype)
    b = ops.cast(ops.convert_to_tensor(b), dtype)
    if len(a.shape) == 4:
        a, b = a[..., 0], b[..., 0]
    rows = ops.convert_to_tensor(_valid_filter_matrix(int(a.shape[1])).astype(dtype))
    cols_t = ops.convert_to_tensor(_valid_filter_matrix(int(a.shape[2])).T.astype(dtype))

    def blur(x):
        return ops.matmul(ops.matmul(rows, x), cols_t)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    return np.asarray(ops.convert_to_numpy(ops.mean(ssim_map, axis=(1, 2))), dtype=np.float64)


def mse_per_image(a, b) -> np.ndarray:
    """Mean squared error of each image pair over all pixels. Returns (n,) float64."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return ((a - b) ** 2).mean(axis=1)
