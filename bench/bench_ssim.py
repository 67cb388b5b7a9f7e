"""Speed and agreement of `search.metrics.ssim_per_image` against a per-image skimage loop.

Pairs: the 5,000 real bundled MNIST digits, each against a noisy copy (Gaussian noise of
standard deviation 0.1, clipped to [0, 1]) and a blurred copy (Gaussian blur, sigma 1): 10,000
pairs. The reference is the loop a notebook would write:
`skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0)` per pair. The batched function is timed on all
pairs in one call (warm median; the first call, which sets up TensorFlow's ops, is reported too).
Agreement: the largest absolute per-image difference, on the 10,000 pairs and on 2,000 pairs of
uniform random images (the hardest case: no flat background).

Usage: python bench/bench_ssim.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import SHARED_NOTE, clock, machine, markdown_table, median, timestamp, write_result

SKIMAGE_KWARGS = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1.0,
}


def digit_pairs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    from search.data import load_mnist

    data = load_mnist("bundled", seed=seed)
    digits = np.concatenate([data.train.images, data.validation.images, data.test.images])[..., 0]
    rng = np.random.default_rng(seed)
    noisy = np.clip(digits + rng.normal(0, 0.1, digits.shape), 0, 1).astype(np.float32)
    blurred = gaussian_filter(digits, sigma=(0, 1, 1)).astype(np.float32)
    return np.concatenate([digits, digits]), np.concatenate([noisy, blurred])


def skimage_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.array(
        [structural_similarity(x, y, **SKIMAGE_KWARGS) for x, y in zip(a, b, strict=True)]
    )


def float32_tensorflow_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The previous `ssim_per_image`: the same formula in float32 on the TF device.

    Kept here only as a same-run speed comparison: on Ampere and newer GPUs TensorFlow's
    default TensorFloat-32 matmuls put it up to ~1e-3 off skimage (tests/test_metrics.py).
    """
    from search.metrics import ssim_per_image

    return ssim_per_image(a, b, dtype="float32")


def timed(fn, *args) -> tuple[float, float, object]:
    (w0, c0) = clock()
    out = fn(*args)
    (w1, c1) = clock()
    return w1 - w0, c1 - c0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm timings of the fast version")
    args = parser.parse_args()

    import keras  # noqa: F401  (imported before timing: TensorFlow's import is not SSIM's cost)

    from search.metrics import ssim_per_image

    started = time.perf_counter()
    a, b = digit_pairs()
    n = len(a)
    described = machine()

    ref_wall, ref_cpu, reference = timed(skimage_loop, a, b)
    cold_wall, cold_cpu, fast = timed(ssim_per_image, a, b)
    warm = [timed(ssim_per_image, a, b)[:2] for _ in range(args.repeats)]
    fast_wall, fast_cpu = median([w for w, _ in warm]), median([c for _, c in warm])
    timed(float32_tensorflow_ssim, a, b)  # op set-up
    old = [timed(float32_tensorflow_ssim, a, b)[:2] for _ in range(args.repeats)]
    old_wall, old_cpu = median([w for w, _ in old]), median([c for _, c in old])
    # After the fast runs, the reference once more: the load can change within a run.
    ref_wall_2, ref_cpu_2, _ = timed(skimage_loop, a, b)
    ref_wall, ref_cpu = min(ref_wall, ref_wall_2), min(ref_cpu, ref_cpu_2)

    diff_digits = float(np.max(np.abs(np.asarray(fast) - np.asarray(reference))))
    rng = np.random.default_rng(1)
    ra, rb = rng.random((2, 2000, 28, 28)).astype(np.float32)
    diff_random = float(np.max(np.abs(ssim_per_image(ra, rb) - skimage_loop(ra, rb))))

    rows = [
        [
            "skimage loop (reference; faster of 2 runs)",
            f"{ref_wall:.2f}",
            f"{ref_cpu:.2f}",
            f"{n / ref_wall:,.0f}",
            "1.0x",
            "-",
        ],
        [
            "ssim_per_image, first call (op set-up)",
            f"{cold_wall:.3f}",
            f"{cold_cpu:.3f}",
            f"{n / cold_wall:,.0f}",
            f"{ref_wall / cold_wall:.1f}x",
            f"{diff_digits:.1e}",
        ],
        [
            f"ssim_per_image, warm (median of {args.repeats})",
            f"{fast_wall:.3f}",
            f"{fast_cpu:.3f}",
            f"{n / fast_wall:,.0f}",
            f"**{ref_wall / fast_wall:.1f}x**",
            f"{diff_digits:.1e}",
        ],
        [
            f"float32 TensorFlow ops, the previous version (TF32-exposed; median of "
            f"{args.repeats})",
            f"{old_wall:.3f}",
            f"{old_cpu:.3f}",
            f"{n / old_wall:,.0f}",
            f"{ref_wall / old_wall:.1f}x",
            "-",
        ],
    ]
    table = markdown_table(
        [
            "SSIM of 10,000 pairs",
            "wall s",
            "CPU s",
            "pairs/s",
            "speed vs skimage (wall)",
            "max abs diff vs skimage",
        ],
        rows,
        ["l", "r", "r", "r", "r", "r"],
    )
    verdict = (
        f"Speed ratio (warm, wall): **{ref_wall / fast_wall:.1f}x** (target >= 20x; by CPU time "
        f"{ref_cpu / fast_cpu:.1f}x). Largest absolute difference: {diff_digits:.2e} on the "
        f"10,000 digit pairs, {diff_random:.2e} on 2,000 uniform random pairs (limit 1e-4): "
        f"{'within' if max(diff_digits, diff_random) <= 1e-4 else 'OUTSIDE'} the limit. "
        f"Against the previous float32 TensorFlow version in this run: "
        f"{old_wall / fast_wall:.2f}x its speed by wall time, {old_cpu / fast_cpu:.2f}x by CPU."
    )
    report = "\n\n".join(
        [
            "# SSIM: batched vs per-image skimage (bench/bench_ssim.py)",
            f"Run {timestamp()} in {time.perf_counter() - started:.0f} s. Machine: {described}.",
            SHARED_NOTE,
            f"{n:,} pairs: the 5,000 bundled MNIST digits against a noisy copy (N(0, 0.1) noise, "
            "clipped) and a blurred copy (Gaussian, sigma 1). Reference: "
            "`skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, data_range=1.0)` in a Python loop. Fast: "
            "`search.metrics.ssim_per_image(a, b)`, all pairs in one call, float64.",
            table,
            verdict,
        ]
    )
    write_result(
        "ssim",
        report,
        {
            "pairs": n,
            "machine": described,
            "skimage_wall_s": ref_wall,
            "skimage_cpu_s": ref_cpu,
            "fast_first_wall_s": cold_wall,
            "fast_warm_wall_s": fast_wall,
            "fast_warm_cpu_s": fast_cpu,
            "float32_tensorflow_warm_wall_s": old_wall,
            "float32_tensorflow_warm_cpu_s": old_cpu,
            "ratio_wall": ref_wall / fast_wall,
            "max_abs_diff_digits": diff_digits,
            "max_abs_diff_random": diff_random,
        },
    )


if __name__ == "__main__":
    main()
