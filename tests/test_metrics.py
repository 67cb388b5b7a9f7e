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


# -- TensorFloat-32 ----------------------------------------------------------------------------
# On Ampere and newer GPUs TensorFlow runs every float32 matmul in TF32 by default: the inputs
# keep 10 of float32's 23 mantissa bits (rounded to nearest even), products are accumulated in
# float32. This CPU cannot do TF32, so the tests emulate it: every float32 matmul that Keras or
# TensorFlow is asked for rounds its inputs first. Other dtypes pass through untouched, as on
# the GPU.


def _tf32(x):
    import tensorflow as tf

    bits = tf.bitcast(tf.convert_to_tensor(x, tf.float32), tf.int32)
    lowest_kept = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 13), 1)
    rounded = tf.bitwise.bitwise_and(bits + 0xFFF + lowest_kept, ~0x1FFF)
    return tf.bitcast(rounded, tf.float32)


@pytest.fixture
def tf32_device(monkeypatch: pytest.MonkeyPatch):
    import keras
    import tensorflow as tf

    keras_matmul, tf_matmul = keras.ops.matmul, tf.matmul

    def is_float32(*tensors) -> bool:
        return all(
            keras.backend.standardize_dtype(getattr(t, "dtype", None)) == "float32" for t in tensors
        )

    def keras_tf32(a, b):
        a, b = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
        return keras_matmul(_tf32(a), _tf32(b)) if is_float32(a, b) else keras_matmul(a, b)

    def tf_tf32(a, b, *args, **kwargs):
        a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
        if is_float32(a, b):
            a, b = _tf32(a), _tf32(b)
        return tf_matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(keras.ops, "matmul", keras_tf32)
    monkeypatch.setattr(tf, "matmul", tf_tf32)
    monkeypatch.setattr(tf.linalg, "matmul", tf_tf32)
    return keras_tf32


def test_the_tf32_emulation_loses_what_tf32_loses(tf32_device):
    import keras

    one_plus = np.float32(1 + 2**-12)  # needs the 12th mantissa bit: TF32 keeps 10
    product = keras.ops.matmul(np.array([[one_plus]]), np.array([[1.0]], np.float32))
    assert np.asarray(product)[0, 0] == 1.0
    in_float64 = keras.ops.matmul(np.array([[1 + 2**-12]]), np.array([[1.0]]))
    assert np.asarray(in_float64)[0, 0] == 1 + 2**-12
    digits = np.random.default_rng(2).random((3, 28, 28)).astype(np.float32)
    assert np.abs(np.asarray(_tf32(digits)) - digits).max() > 1e-4


def test_ssim_stays_within_1e4_of_skimage_on_a_tf32_device(mnist, tf32_device):
    originals = mnist.test.images[:200, ..., 0].astype(np.float32)
    rng = np.random.default_rng(3)
    noisy = np.clip(originals + rng.normal(0, 0.1, originals.shape), 0, 1).astype(np.float32)
    blurred = np.stack([gaussian_filter(x, 1.0) for x in originals]).astype(np.float32)
    random_a, random_b = rng.random((2, 100, 28, 28)).astype(np.float32)
    for a, b in ((originals, noisy), (originals, blurred), (random_a, random_b)):
        assert np.abs(ssim_per_image(a, b) - _reference(a, b)).max() <= 1e-4
