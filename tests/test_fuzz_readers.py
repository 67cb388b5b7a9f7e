"""Property-based fuzzing of the data readers and the option parsers (Hypothesis).

Generated: CSV files (real digit rows with fields replaced by junk, columns added or dropped,
bytes inserted, files truncated, a BOM, a header, gzipped or corrupt gzip), .npz archives
(arrays of every dtype numpy can save without pickle and of many shapes, key sets with and
without a test split, and valid archives with bytes flipped), IDX folders (headers with random
type byte, dimension count and sizes, bodies short, long or random, plain or gzipped), and
option values (huge and negative integers, NaN, infinities, text, control characters) for
`run`, `train`, `report` and `dashboard`, including `--space` and `--sweep` specifications.

Every generated data file goes through the real door, `python -m search run --data FILE`
(in this process), with a storage URL that is always refused: whether the file is refused or
accepted, the command must exit 2 with one `error:` line and no traceback, leave no new file
and leave the stored study byte-identical. A file that was accepted is then loaded directly
and must give images in [0, 1] and labels 0..9. Option values are fuzzed with a data file
that is always refused, so no generated command ever trains.

The run is deterministic (derandomized) and bounded: FUZZ_EXAMPLES examples per test
(environment variable VAE_SEARCH_FUZZ_EXAMPLES overrides it); each test is bounded by
pytest-timeout, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from search.data import load_mnist
from search.errors import UsageError
from tests.hostile import digits, existing_study, idx_bytes, refused, snapshot

# A warning printed by numpy (an overflow, say) would be a second line under the error.
pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),
]

FUZZ_EXAMPLES = int(os.environ.get("VAE_SEARCH_FUZZ_EXAMPLES", "100"))
FUZZ_TIMEOUT_S = 300
REFUSED_STORAGE = "nosuch://refused"  # checked after the data: the run always ends here

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # time is bounded by pytest-timeout, not per example
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return existing_study(tmp_path_factory.mktemp("template"))


@contextmanager
def _workdir(stored_study: Path) -> Iterator[Path]:
    """A fresh folder holding a copy of the stored study, as the working directory."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        root = Path(tmp)
        (root / "studies").mkdir()
        shutil.copyfile(stored_study, root / "studies" / stored_study.name)
        (root / "inputs").mkdir()
        previous = os.getcwd()
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(previous)


def _through_the_door(source: Path, root: Path, capsys) -> None:
    """`run --data SOURCE` refuses (for the data or for the storage) and touches nothing; the
    reader itself either refuses in one line or gives images in [0, 1] and labels 0..9."""
    before = snapshot(root)
    refused(
        ["run", "--preset", "smoke", "--data", str(source), "--storage", REFUSED_STORAGE], capsys
    )
    assert snapshot(root) == before
    try:
        data = load_mnist(str(source), validation_size=1, test_size=1)
    except UsageError as refusal:
        assert str(refusal) and "\n" not in str(refusal)
        return
    for split in (data.train, data.validation, data.test):
        assert split.images.dtype == np.float32 and split.images.shape[1:] == (28, 28, 1)
        assert np.isfinite(split.images).all()
        assert split.images.min() >= 0.0 and split.images.max() <= 1.0
        assert set(np.unique(split.labels)) <= set(range(10))


# -- CSV ------------------------------------------------------------------------------------

JUNK = st.one_of(
    st.sampled_from(
        [
            "",
            "x",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e999",
            "-1",
            "256",
            "3.5",
            "0x10",
            '"5"',
            "\x00",
            " ",
            "1;2",
            "\u0663",
            "\ufeff7",
            "1e-999",
            "+4",
            "1_0",
        ]
    ),
    st.text(max_size=6),
)


@st.composite
def csv_bytes(draw) -> tuple[str, bytes]:
    n = draw(st.integers(3, 16))
    x, y = digits(n)
    rows = [[str(v) for v in (int(label), *row)] for label, row in zip(y, x, strict=True)]
    for _ in range(draw(st.integers(0, 3))):
        row = draw(st.integers(0, n - 1))
        what = draw(st.sampled_from(["field", "drop", "add", "scale", "line"]))
        column = draw(st.integers(0, 784))
        if what == "field":
            rows[row][column] = draw(JUNK)
        elif what == "drop":
            del rows[row][column]
        elif what == "add":
            rows[row].insert(column, draw(JUNK))
        elif what == "scale":
            rows[row] = [rows[row][0]] + [
                f"{int(v) / 255:.3f}" if v.isdigit() else v for v in rows[row][1:]
            ]
        else:
            rows[row] = rows[row] * draw(st.integers(2, 200))
    text = "\n".join(",".join(row) for row in rows) + "\n"
    if draw(st.booleans()):
        text = "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + text
    if draw(st.booleans()):
        text = "\ufeff" + text
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=16)) + raw[at:]
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    name = "data.csv"
    if draw(st.booleans()):
        name = "data.csv.gz"
        raw = gzip.compress(raw)
        if draw(st.booleans()):
            at = draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at + 1 :]
    return name, raw


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@fuzz
@given(csv_bytes())
def test_fuzzed_csv_files(stored_study, capsys, generated):
    name, raw = generated
    with _workdir(stored_study) as root:
        source = root / "inputs" / name
        source.write_bytes(raw)
        _through_the_door(source, root, capsys)


# -- .npz -----------------------------------------------------------------------------------

DTYPES = st.one_of(
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.boolean_dtypes(),
    hnp.datetime64_dtypes(),
    hnp.timedelta64_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
)
IMAGE_SHAPES = st.one_of(
    st.sampled_from(
        [
            (),
            (0,),
            (0, 784),
            (6, 784),
            (6, 28, 28),
            (6, 28, 28, 1),
            (6, 27, 28),
            (6, 28, 28, 2),
            (6, 783),
            (1, 6, 784),
        ]
    ),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
)
LABEL_SHAPES = st.one_of(
    st.sampled_from([(), (6,), (6, 1), (5,), (6, 2)]),
    hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=7),
)


@st.composite
def npz_bytes(draw) -> bytes:
    buffer = io.BytesIO()
    if draw(st.booleans()):  # a valid archive with a few bytes changed
        x, y = digits(8)
        np.savez(buffer, x_train=x, y_train=y)
        raw = bytearray(buffer.getvalue())
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    arrays = {}
    for key in draw(st.sets(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "z"]))):
        shape = draw(IMAGE_SHAPES if key.startswith("x") else LABEL_SHAPES)
        dtype = draw(st.one_of(st.just(np.dtype(np.uint8)), st.just(np.dtype(np.float64)), DTYPES))
        arrays[key] = draw(hnp.arrays(dtype, shape, fill=hnp.from_dtype(dtype)))
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@fuzz
@given(npz_bytes())
def test_fuzzed_npz_files(stored_study, capsys, raw):
    with _workdir(stored_study) as root:
        source = root / "inputs" / "data.npz"
        source.write_bytes(raw)
        _through_the_door(source, root, capsys)


# -- IDX ------------------------------------------------------------------------------------


@st.composite
def idx_file(draw, valid: bytes) -> bytes:
    if draw(st.booleans()):
        raw = valid
        if draw(st.booleans()):
            raw = raw[: draw(st.integers(0, len(raw)))]
        else:
            raw = raw + draw(st.binary(max_size=8))
    else:
        type_byte = draw(st.sampled_from([8, 8, 8, 9, 0x0D, 0]) | st.integers(0, 255))
        n_dims = draw(st.sampled_from([0, 1, 3, 4, 255]) | st.integers(0, 255))
        sizes = draw(
            st.lists(
                st.sampled_from([0, 1, 6, 28, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1),
                min_size=min(n_dims, 4),
                max_size=min(n_dims, 4),
            )
        )
        raw = bytes([0, 0, type_byte, n_dims]) + b"".join(s.to_bytes(4, "big") for s in sizes)
        raw += draw(st.binary(max_size=64))
    return gzip.compress(raw) if draw(st.booleans()) else raw


@st.composite
def idx_folders(draw) -> dict[str, bytes]:
    x, y = digits(8)
    images = draw(idx_file(idx_bytes(x.reshape(-1, 28, 28))))
    labels = draw(idx_file(idx_bytes(y)))
    files = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels}
    if draw(st.booleans()):
        files["t10k-images-idx3-ubyte"] = idx_bytes(x.reshape(-1, 28, 28))
    return files


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@fuzz
@given(idx_folders(), st.booleans())
def test_fuzzed_idx_folders(stored_study, capsys, files, gz_names):
    with _workdir(stored_study) as root:
        folder = root / "inputs" / "mnist"
        folder.mkdir()
        for name, raw in files.items():
            is_gz = raw[:2] == b"\x1f\x8b"
            (folder / (name + (".gz" if is_gz else ""))).write_bytes(raw)
        _through_the_door(folder, root, capsys)


# -- option values ----------------------------------------------------------------------------

NUMBERISH = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-0",
            "0x1f",
            " 5 ",
            "\u0663",
            "5\n6",
            "",
            "true",
            "null",
            "[1]",
            "{}",
            "1:2:3",
            "--seed",
        ]
    ),
    st.text(max_size=8),
)
SPACE_NAMES = st.sampled_from(
    ["latent_dim", "n_layers", "filters", "dense_units", "loss", "beta", "predictor", ""]
)


@st.composite
def space_specs(draw) -> str:
    name = draw(SPACE_NAMES)
    values = draw(st.lists(NUMBERISH | st.sampled_from(["bce", "mse", "0", "8"]), max_size=4))
    joiner = draw(st.sampled_from([":", ","]))
    return f"{name}={joiner.join(v.replace(',', '') for v in values)}"


RUN_OPTIONS = [
    "--seed",
    "--trials",
    "--epochs",
    "--subset",
    "--eta",
    "--grace-epochs",
    "--timeout",
    "--workers",
    "--repeats",
    "--gpus",
    "--heartbeat-interval",
    "--grace-period",
    "--study",
    "--preset",
    "--sampler",
    "--keep-models",
]
TRAIN_OPTIONS = [
    "--seed",
    "--latent-dim",
    "--layers",
    "--filters",
    "--dense-units",
    "--loss",
    "--beta",
    "--batch-size",
    "--epochs",
    "--subset",
    "--save",
]


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(["run", "train", "report", "dashboard", "space", "sweep"]))
    value = draw(NUMBERISH)
    if command in {"space", "sweep"}:
        return ["run", "--data", "inputs/refused.csv", f"--{command}", draw(space_specs())]
    if command == "run":
        return ["run", "--data", "inputs/refused.csv", draw(st.sampled_from(RUN_OPTIONS)), value]
    if command == "train":
        return [
            "train",
            "--data",
            "inputs/refused.csv",
            draw(st.sampled_from(TRAIN_OPTIONS)),
            value,
        ]
    own = ["--out", "--format"] if command == "report" else ["--port", "--host"]
    option = draw(st.sampled_from([*own, "--study"]))
    # No study of that name is stored, so even a valid value ends in a refusal.
    study = [] if option == "--study" else ["--study", "nosuch"]
    return [command, *study, option, value]


# The documented ranges (README), independent of the parser: a value outside must be refused
# by name, a value inside must get past the option to the later refusal (data or study).
WHOLE_RANGES = {
    "--seed": (0, 2**32 - 1),
    "--trials": (1, 100_000),
    "--epochs": (1, 10_000),
    "--eta": (2, 100),
    "--workers": (1, 256),
    "--repeats": (1, 1000),
    "--heartbeat-interval": (1, 86_400),
    "--latent-dim": (1, 512),
    "--layers": (1, 8),
    "--filters": (1, 1024),
    "--dense-units": (1, 8192),
    "--batch-size": (1, 65_536),
    "--port": (0, 65_535),  # 0: any free port, printed (docs/cli.md)
}
REAL_RANGES = {"--timeout": (0.0, math.inf), "--beta": (0.0, 1000.0)}


def _acceptable(option: str, value: str) -> bool | None:
    """Whether `value` is in the documented range of `option` (None: not judged here)."""
    if value.startswith("-") and not value[1:2].isdigit():
        return False  # argparse reads it as another option
    if option == "--workers" and value.strip().lower() == "auto":
        return True  # the documented default, spelled out
    if option in WHOLE_RANGES:
        low, high = WHOLE_RANGES[option]
        try:
            return low <= int(value) <= high
        except ValueError:
            return False
    if option in REAL_RANGES:
        low, high = REAL_RANGES[option]
        try:
            number = float(value)
        except ValueError:
            return False
        inside = low < number < high if option == "--timeout" else low <= number <= high
        return math.isfinite(number) and inside
    return None


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@fuzz
@given(command_lines())
def test_fuzzed_option_values(stored_study, capsys, argv):
    with _workdir(stored_study) as root:
        (root / "inputs" / "refused.csv").write_text("3,1,2\n")
        before = snapshot(root)
        line = refused(argv, capsys)
        assert snapshot(root) == before
    option, value = argv[-2], argv[-1]
    acceptable = _acceptable(option, value)
    if acceptable is False:
        assert f"argument {option}" in line, line
    elif acceptable:
        assert f"argument {option}" not in line, line
