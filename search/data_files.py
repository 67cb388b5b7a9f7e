"""Reading MNIST from a file the user names: .npz in keras' layout, Kaggle/Colab CSV
(optionally .gz) or IDX files, each read defensively (size caps, no pickles, one clear error
per kind of damage), into raw arrays that search/data.py turns into splits."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from search.errors import UsageError

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE
# Input limits: full MNIST is 70,000 images, 55 MB as IDX and 110 MB as CSV. These leave room
# for larger 28x28 sets while keeping a hostile file from filling memory.
MAX_DATA_BYTES = 1 << 30  # a data file, and what it decompresses to
MAX_IMAGES = 300_000
MAX_CSV_LINE = 64 * 1024  # characters; a real row (label and 784 pixels) is under 10,000
CSV_BLOCK_ROWS = 2000
IDX_IMAGE_DIMS, IDX_LABEL_DIMS = 3, 1
REAL_KINDS = "iuf"  # numpy dtype kinds of real numbers: signed, unsigned, floating
# What a damaged file can raise while it is decoded (gzip, deflate, zip, .npy headers).
_DECODE_ERRORS = (OSError, EOFError, ValueError, zlib.error, NotImplementedError, RuntimeError)


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


def load_file(path: Path) -> RawMnist:
    kind = _path_kind(path)
    if kind == "folder":
        return _load_idx_dir(path)
    name = path.name.lower()
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
    return RawMnist(x, y, x_test, y_test, "file", os.path.abspath(path), file_sha256(path))


def _path_kind(path: Path) -> str:
    """'file' or 'folder'; anything else (missing, FIFO, device, socket, too big) is refused.

    Checked with `stat` (which follows symlinks) before the file is opened: opening a FIFO
    blocks, and reading /dev/zero never ends.
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        raise UsageError(
            f"data file not found: {path} (or use --data auto|keras|bundled)"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        raise UsageError(f"cannot access the data path {path}: {_reason(err)}") from None
    if stat.S_ISDIR(status.st_mode):
        return "folder"
    if not stat.S_ISREG(status.st_mode):
        raise UsageError(
            f"{path} is not a regular file ({_special_kind(status.st_mode)}): give a data file "
            "or a folder of IDX files"
        )
    if status.st_size == 0:
        raise UsageError(f"data file is empty: {path}")
    if status.st_size > MAX_DATA_BYTES:
        raise UsageError(
            f"data file {path} is {status.st_size / 2**20:.0f} MiB, more than the "
            f"{MAX_DATA_BYTES // 2**20} MiB this tool reads"
        )
    if not os.access(path, os.R_OK):
        raise UsageError(f"data file {path} is not readable (permission denied)")
    return "file"


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _reason(err: BaseException) -> str:
    """One short line from a decoder's or the OS's exception, never a multi-line hint."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:200]


def _open_binary(path: Path) -> io.BufferedReader:
    """The file's bytes, decompressed when it ends in .gz, never more than MAX_DATA_BYTES."""
    # Closed by the BufferedReader that wraps it (the caller's `with`).
    inner: IO[bytes] | gzip.GzipFile = open(path, "rb")  # noqa: SIM115
    if path.name.lower().endswith(".gz"):
        inner = gzip.GzipFile(fileobj=inner, mode="rb")
    return io.BufferedReader(_CappedReader(inner, path))


class _CappedReader(io.RawIOBase):
    """A readable stream that refuses to yield more than MAX_DATA_BYTES (a gzip bomb stops)."""

    def __init__(self, inner: IO[bytes] | gzip.GzipFile, path: Path) -> None:
        super().__init__()
        self._inner, self._path, self._read = inner, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        self._read += len(data)
        if self._read > MAX_DATA_BYTES:
            raise UsageError(
                f"{self._path} holds more than {MAX_DATA_BYTES // 2**20} MiB of data "
                "(decompressed), more than this tool reads"
            )
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        fileobj = getattr(self._inner, "fileobj", None)  # GzipFile leaves its file open
        self._inner.close()
        if fileobj is not None:
            fileobj.close()
        super().close()


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """keras' layout: x_train, y_train[, x_test, y_test], each checked before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                name.removesuffix(".npy"): name
                for name in archive.namelist()
                if name.endswith(".npy")
            }
            missing = {"x_train", "y_train"} - members.keys()
            if missing:
                raise UsageError(
                    f"{path} lacks {', '.join(sorted(missing))} (expected keras' layout: "
                    "x_train, y_train, x_test, y_test)"
                )
            arrays = {
                key: _read_npy_member(archive, members[key], path)
                for key in ("x_train", "y_train", "x_test", "y_test")
                if key in members
            }
    except UsageError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise UsageError(f"{path} is not a valid .npz (zip) archive: {_reason(err)}") from None
    except _DECODE_ERRORS as err:
        raise UsageError(f"cannot read {path} as .npz: {_reason(err)}") from None
    _check_test_pair(path, "x_test" in arrays, "y_test" in arrays, "x_test", "y_test")
    return arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test")


def _read_npy_member(archive: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    """One array of the archive; its header is checked before any memory is allocated for it."""
    key = member.removesuffix(".npy")
    info = archive.getinfo(member)
    if info.file_size > MAX_DATA_BYTES:
        raise UsageError(
            f"{path}: {key} is {info.file_size / 2**20:.0f} MiB uncompressed, more than the "
            f"{MAX_DATA_BYTES // 2**20} MiB this tool reads"
        )
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in NPY_HEADER_READERS:
            raise UsageError(f"{path}: {key} uses .npy format version {version}, not 1.0 or 2.0")
        try:
            shape, fortran_order, dtype = NPY_HEADER_READERS[version](stream)
        except (SyntaxError, tokenize.TokenError) as err:  # numpy tokenizes the header text
            raise UsageError(f"{path}: {key} has a damaged .npy header: {_reason(err)}") from None
        if dtype.kind not in REAL_KINDS:
            raise UsageError(
                f"{path}: {key} has dtype {dtype}, expected real numbers (integers or floats)"
            )
        count = math.prod(shape)
        if count * dtype.itemsize > MAX_DATA_BYTES:
            raise UsageError(
                f"{path}: {key} has shape {shape} ({count * dtype.itemsize / 2**20:.0f} MiB), "
                f"more than the {MAX_DATA_BYTES // 2**20} MiB this tool reads"
            )
        body = stream.read(count * dtype.itemsize)
        if len(body) != count * dtype.itemsize:
            raise UsageError(f"{path}: {key} is truncated (header says shape {shape})")
    return np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _check_test_pair(path: Path, has_x: bool, has_y: bool, x_name: str, y_name: str) -> None:
    if has_x != has_y:
        present, absent = (x_name, y_name) if has_x else (y_name, x_name)
        raise UsageError(
            f"{path} has {present} but no {absent}: give both (a held-out test set) or neither"
        )


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle `label,pixel0..pixel783` with a header, or Colab's headerless rows.

    Read line by line (a line longer than MAX_CSV_LINE is refused before it fills memory) and
    parsed in blocks. The first row is a header only when none of its fields is a number; a
    first row that is partly numbers is refused instead of silently dropped.
    """
    blocks: list[np.ndarray] = []
    pending: list[str] = []
    rows = 0
    first_row = True
    try:
        with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig") as handle:
            while True:
                line = handle.readline(MAX_CSV_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_CSV_LINE:
                    raise UsageError(
                        f"{path}: row {rows + 1} is longer than {MAX_CSV_LINE:,} characters "
                        f"(a row is a label and {PIXELS} pixels)"
                    )
                if not line.strip():
                    continue
                if first_row:
                    first_row = False
                    if _is_header(line, path):
                        continue
                rows += 1
                columns = line.count(",") + 1
                if columns != PIXELS + 1:
                    raise UsageError(
                        f"{path}: row {rows} has {columns} columns, expected {PIXELS + 1} "
                        f"(label then {PIXELS} pixels)"
                    )
                if rows > MAX_IMAGES:
                    raise UsageError(f"{path} has more than {MAX_IMAGES:,} rows")
                pending.append(line)
                if len(pending) == CSV_BLOCK_ROWS:
                    blocks.append(_parse_csv_block(pending, rows - len(pending), path))
                    pending = []
    except UsageError:
        raise
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text: {_reason(err)}") from None
    except _DECODE_ERRORS as err:
        raise UsageError(f"cannot read {path}: {_reason(err)}") from None
    if pending:
        blocks.append(_parse_csv_block(pending, rows - len(pending), path))
    if not blocks:
        raise UsageError(
            f"data file is empty: {path}" if first_row else f"{path} has a header but no rows"
        )
    table = np.concatenate(blocks)
    return table[:, 1:], table[:, 0].astype(np.float64)


def _is_header(line: str, path: Path) -> bool:
    fields = [field.strip() for field in line.split(",")]
    numbers = sum(_is_number(field) for field in fields)
    if numbers == len(fields):
        return False
    if numbers == 0:
        return True
    raise UsageError(
        f"{path}: the first row is neither a header nor data ({numbers} of {len(fields)} fields "
        f"are numbers; its first field is {fields[0][:20]!r})"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_csv_block(lines: list[str], first_row: int, path: Path) -> np.ndarray:
    try:
        return np.loadtxt(lines, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError:
        pass
    for offset, line in enumerate(lines):  # find the culprit to name it
        for column, value in enumerate(line.split(","), start=1):
            if not _is_number(value.strip()):
                raise UsageError(
                    f"{path}: row {first_row + offset + 1}, column {column} is not a number: "
                    f"{value.strip()[:20]!r}"
                ) from None
    raise UsageError(f"{path}: rows {first_row + 1}..{first_row + len(lines)} are malformed")


def _load_idx_dir(directory: Path, hint: Path | None = None) -> RawMnist:
    """IDX files as published on the MNIST page, optionally gzipped."""
    try:
        files = sorted(p for p in directory.iterdir() if "idx" in p.name)
    except OSError as err:
        raise UsageError(f"cannot list the data folder {directory}: {_reason(err)}") from None
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
    test_images, test_labels = find("t10k", "idx3"), find("t10k", "idx1")
    _check_test_pair(
        directory, test_images is not None, test_labels is not None, "t10k images", "t10k labels"
    )
    x, y = _read_idx(images, IDX_IMAGE_DIMS), _read_idx(labels, IDX_LABEL_DIMS)
    x_test = _read_idx(test_images, IDX_IMAGE_DIMS) if test_images else None
    y_test = _read_idx(test_labels, IDX_LABEL_DIMS) if test_labels else None
    digest = hashlib.sha256(b"".join(file_sha256(p).encode() for p in (images, labels))).hexdigest()
    return RawMnist(x, y, x_test, y_test, "idx", os.path.abspath(directory), digest)


def _read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes: images (n, 28, 28) or labels (n,), header checked first."""
    _path_kind_file(path)
    try:
        with _open_binary(path) as stream:
            head = stream.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise UsageError(f"{path}: not an IDX file of unsigned bytes")
            if head[3] != dims:
                raise UsageError(
                    f"{path}: an IDX file with {head[3]} dimensions, expected {dims} "
                    f"({'images n x 28 x 28' if dims == IDX_IMAGE_DIMS else 'labels n'})"
                )
            sizes = stream.read(4 * dims)
            if len(sizes) < 4 * dims:
                raise UsageError(f"{path}: the IDX header is truncated")
            shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(dims))
            if shape[0] > MAX_IMAGES or (dims == IDX_IMAGE_DIMS and shape[1:] != (28, 28)):
                raise UsageError(
                    f"{path}: header says shape {shape}; expected at most {MAX_IMAGES:,} "
                    + ("28 x 28 images" if dims == IDX_IMAGE_DIMS else "labels")
                )
            count = math.prod(shape)
            body = stream.read(count)
            if len(body) != count:
                raise UsageError(f"{path}: header says {shape} but holds {len(body)} values")
            if stream.read(1):
                raise UsageError(f"{path}: more data than the header's {shape} announces")
    except UsageError:
        raise
    except _DECODE_ERRORS as err:
        raise UsageError(f"cannot read {path}: {_reason(err)}") from None
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _path_kind_file(path: Path) -> None:
    if _path_kind(path) != "file":
        raise UsageError(f"{path} is a folder, expected an IDX file")


def to_unit_images(x: np.ndarray, *, what: str) -> np.ndarray:
    """Validate and scale to float32 (n, 28, 28, 1) in [0, 1].

    The scale is read from the data: all within 0..1, or 0..255 (divided by 255). Data that
    fits neither, or mixes them (some images peaking at 1 or below while others reach 255),
    is refused: guessing would train on near-black or clipped images.
    """
    x = np.asarray(x)
    if x.dtype.kind not in REAL_KINDS:
        raise UsageError(f"{what} have dtype {x.dtype}, expected real numbers (integers or floats)")
    if x.ndim not in (2, 3, 4):
        raise UsageError(
            f"{what} have shape {x.shape}, expected (n, 28, 28), (n, 28, 28, 1) or (n, 784)"
        )
    if x.size == 0 or len(x) == 0:
        raise UsageError(f"no {what} in the data")
    if len(x) > MAX_IMAGES:
        raise UsageError(f"{len(x):,} {what}, more than the {MAX_IMAGES:,} this tool reads")
    x = x.reshape(len(x), -1)
    if x.shape[1] != PIXELS:
        raise UsageError(f"{what} have {x.shape[1]} pixels each, expected {PIXELS} (28x28)")
    # Checked in the stored dtype: a huge float64 would overflow (with a warning) in float32.
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise UsageError(f"{what} contain NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise UsageError(
            f"{what} have pixel values in [{low:g}, {high:g}], expected 0..255 or 0..1"
        )
    x = x.astype(np.float32)
    if high > 1.0:
        peaks = x.max(axis=1)
        faint = np.flatnonzero((peaks > 0) & (peaks <= 1.0))
        if len(faint):
            raise UsageError(
                f"{what} mix scales: {len(faint)} image(s) peak at 1 or below (image "
                f"{faint[0]}: {peaks[faint[0]]:g}) while others reach {high:g}; expected every "
                "image in 0..1 or every image in 0..255"
            )
        x = x / 255.0  # stored as 0..255
    return x.reshape(-1, IMAGE_SIDE, IMAGE_SIDE, 1)


def check_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in REAL_KINDS:
        raise UsageError(f"labels have dtype {y.dtype}, expected numbers 0..9")
    if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise UsageError(f"labels have shape {y.shape}, expected (n,)")
    y = y.reshape(-1)
    if len(y) != n:
        raise UsageError(f"{n} images but {len(y)} labels")
    bad = np.flatnonzero(~np.isin(y, np.arange(10)))
    if len(bad):
        raise UsageError(
            f"labels must be whole numbers 0..9, found {y[bad[0]]:g} (label {bad[0]})"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
        )
    return y.astype(np.int64)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
