"""Every door checked: hostile input gets one `error:` line and exit 2, and touches nothing.

Each case runs the command in this process (`search.cli.main`) with the working directory in a
temporary folder that holds a real stored study. After the refusal the folder tree must be
exactly as before (no new file or folder) and the study's database byte-identical. Each case
is bounded by pytest-timeout, so a hang (a FIFO, /dev/zero) fails the case instead of CI.
A few end-to-end cases run `python -m search` as a subprocess with a timeout.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from search.cli import main
from tests.conftest import run_cli
from tests.hostile import (
    STUDY,
    csv_text,
    digits,
    existing_study,
    idx_bytes,
    refused,
    snapshot,
    write_idx_folder,
)

CASE_TIMEOUT_S = 60
# A warning printed by numpy (an overflow, say) would be a second line under the error.
pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),
]


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return existing_study(tmp_path_factory.mktemp("template"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored_study: Path) -> Path:
    """cwd = a folder with a real study in studies/mnist-vae.db and an `inputs/` folder."""
    (tmp_path / "studies").mkdir()
    shutil.copyfile(stored_study, tmp_path / "studies" / stored_study.name)
    (tmp_path / "inputs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- bad data files: each maker writes one under `inputs/` and returns the --data value ------


def _csv(folder: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> str:
    (folder / name).write_text(text, encoding=encoding)
    return str(folder / name)


def _npz(folder: Path, **arrays: np.ndarray) -> str:
    np.savez(folder / "data.npz", **arrays)
    return str(folder / "data.npz")


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "train.csv")
    return str(folder / "train.csv")


def _link(folder: Path, target: str, name: str) -> str:
    (folder / name).symlink_to(target)
    return str(folder / name)


def _idx_dev_zero(folder: Path) -> str:
    x, y = digits(100)
    write_idx_folder(folder / "mnist", x, y)
    (folder / "mnist" / "train-images-idx3-ubyte").unlink()
    (folder / "mnist" / "train-images-idx3-ubyte").symlink_to("/dev/zero")
    return str(folder / "mnist")


def _gzip_bomb(folder: Path) -> str:
    """A 200 MB line of digits, about 200 KB compressed."""
    with gzip.open(folder / "bomb.csv.gz", "wb", compresslevel=9) as out:
        chunk = b"1" * (10 << 20)
        for _ in range(20):
            out.write(chunk)
    return str(folder / "bomb.csv.gz")


def _corrupt_deflate(folder: Path) -> str:
    x, y = digits(50)
    packed = bytearray(gzip.compress(csv_text(x, y).encode()))
    packed[10:40] = b"\xff" * 30  # the deflate stream right after the gzip header
    (folder / "data.csv.gz").write_bytes(bytes(packed))
    return str(folder / "data.csv.gz")


def _idx(folder: Path, images: bytes, labels: bytes | None = None) -> str:
    x, y = digits(100)
    write_idx_folder(folder / "mnist", x, y)
    (folder / "mnist" / "train-images-idx3-ubyte").write_bytes(images)
    if labels is not None:
        (folder / "mnist" / "train-labels-idx1-ubyte").write_bytes(labels)
    return str(folder / "mnist")


def _scaled(mutate: Callable[[np.ndarray], None]) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        x, y = digits()
        images = x.astype(np.float64) / 255.0
        mutate(images)
        return _npz(folder, x_train=images, y_train=y)

    return make


def _labels(mutate: Callable[[np.ndarray], None]) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        x, y = digits()
        labels = y.astype(np.float64)
        mutate(labels)
        return _npz(folder, x_train=x, y_train=labels)

    return make


def _first_row_label(label: str) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        x, y = digits()
        rows = csv_text(x, y).splitlines()
        rows[0] = label + rows[0][rows[0].index(",") :]
        return _csv(folder, "\n".join(rows) + "\n")

    return make


def _one_pixel(images: np.ndarray) -> None:
    images[5, 100] = 1.5


def _mixed_rows(images: np.ndarray) -> None:
    images[10:] *= 255.0  # the first ten rows stay in 0..1


def _label_3_5(labels: np.ndarray) -> None:
    labels[7] = 3.5


def _header_only(folder: Path) -> str:
    return _csv(folder, "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")


def _x_test_without_y_test(folder: Path) -> str:
    x, y = digits()
    return _npz(folder, x_train=x, y_train=y, x_test=x[:50])


BAD_DATA: dict[str, tuple[Callable[[Path], str], str]] = {
    # cause 1: readers that trusted their input
    "corrupt deflate stream": (_corrupt_deflate, "data.csv.gz"),
    "zero-dimensional x_train": (
        lambda d: _npz(d, x_train=np.array(3.0), y_train=np.array(1)),
        "shape ()",
    ),
    "IDX with 255 dimensions": (lambda d: _idx(d, bytes([0, 0, 8, 255]) + b"\0" * 1024), "255"),
    "IDX dimensions overflow": (
        # 2^22 * 2^21 * 2^21 = 2^64, which numpy's int64 product wraps to 0
        lambda d: _idx(
            d,
            bytes([0, 0, 8, 3])
            + b"".join(n.to_bytes(4, "big") for n in (1 << 22, 1 << 21, 1 << 21)),
        ),
        "header says",
    ),
    "IDX announces more than it holds": (
        lambda d: _idx(
            d, bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (99, 28, 28))
        ),
        "holds 0 values",
    ),
    "IDX with trailing bytes": (
        lambda d: _idx(d, idx_bytes(np.zeros((100, 28, 28), np.uint8)) + b"extra"),
        "more data",
    ),
    "IDX of floats": (lambda d: _idx(d, bytes([0, 0, 0x0D, 3]) + b"\0" * 64), "unsigned bytes"),
    "not a zip .npz": (lambda d: _csv(d, "hello", "data.npz"), "not a valid .npz"),
    "pickle in .npz": (
        lambda d: (Path(d, "p.npz").write_bytes(b"\x80\x04K\x01."), str(Path(d, "p.npz")))[1],
        "not a valid .npz",
    ),
    "object array in .npz": (
        lambda d: _npz(d, x_train=np.zeros((300, 784)), y_train=np.array(["1"] * 300)),
        "dtype",
    ),
    # cause 2: not every path is a regular file
    "FIFO": (_fifo, "FIFO"),
    "symlink to /dev/zero named .npz": (lambda d: _link(d, "/dev/zero", "zero.npz"), "device"),
    "/dev/urandom": (lambda d: "/dev/urandom", "device"),
    "IDX folder linking /dev/zero": (_idx_dev_zero, "device"),
    "missing file": (lambda d: str(d / "missing.csv"), "not found"),
    "empty file": (lambda d: _csv(d, ""), "empty"),
    "empty --data": (lambda d: "", "empty"),
    "NUL in the path": (lambda d: str(d / "a\0b.csv"), "cannot access"),
    "folder without IDX files": (lambda d: str(d), "no train-images"),
    # cause 3: no size limits
    "gzip bomb (one 200 MB line)": (_gzip_bomb, "longer than"),
    # cause 9: garbage trained on silently
    "label x on a headerless CSV": (_first_row_label("x"), "neither a header nor data"),
    "label nan on a headerless CSV": (_first_row_label("nan"), "found nan"),
    "one pixel at 1.5 in 0..1 data": (_scaled(_one_pixel), "mix scales"),
    "rows mixing 0..1 and 0..255": (_scaled(_mixed_rows), "mix scales"),
    "complex x_train": (
        lambda d: _npz(d, x_train=digits()[0].astype(complex), y_train=digits()[1]),
        "complex128",
    ),
    "timedelta x_train": (
        lambda d: _npz(d, x_train=digits()[0].astype("m8[s]"), y_train=digits()[1]),
        "timedelta64",
    ),
    "x_test without y_test": (_x_test_without_y_test, "x_test but no y_test"),
    "header only": (_header_only, "no rows"),
    "not UTF-8": (
        lambda d: (Path(d, "b.csv").write_bytes(b"\xff\xfe\x00" * 99), str(Path(d, "b.csv")))[1],
        "UTF-8",
    ),
    # cause 11
    "label 3.5": (_labels(_label_3_5), "found 3.5"),
}

DATA_COMMANDS = {
    "train": ["train", "--epochs", "1"],
    "run": ["run", "--preset", "smoke", "--trials", "1", "--no-report"],
}


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("command", sorted(DATA_COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_line_and_touches_nothing(workdir, capsys, case, command):
    make, expected = BAD_DATA[case]
    source = make(workdir / "inputs")
    before = snapshot(workdir)
    line = refused([*DATA_COMMANDS[command], "--data", source], capsys)
    assert expected in line, line
    assert "If you trust" not in line and "allow_pickle" not in line
    assert snapshot(workdir) == before


def test_a_headerless_csv_with_a_bom_keeps_its_first_row(tmp_path):
    from search.data import load_mnist

    x, y = digits(200)
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    plain.write_text(csv_text(x, y), encoding="utf-8")
    bom.write_text(csv_text(x, y), encoding="utf-8-sig")
    for path in (plain, bom):
        data = load_mnist(str(path), test_size=20, validation_size=20)
        assert len(data.train) + len(data.validation) + len(data.test) == 200


def test_real_data_in_either_scale_still_loads(tmp_path):
    from search.data import load_mnist

    x, y = digits(200)
    np.savez(tmp_path / "unit.npz", x_train=x / 255.0, y_train=y)
    np.savez(tmp_path / "bytes.npz", x_train=x.astype(np.float32), y_train=y.astype(np.uint8))
    unit = load_mnist(str(tmp_path / "unit.npz"), seed=1)
    raw = load_mnist(str(tmp_path / "bytes.npz"), seed=1)
    assert np.allclose(unit.train.images, raw.train.images, atol=1e-6)
    assert raw.train.images.max() == pytest.approx(1.0)


# -- bad option values ------------------------------------------------------------------------

RUN = ["run", "--preset", "smoke", "--trials", "1", "--no-report", "--data", "bundled"]
TRAIN = ["train", "--epochs", "1", "--data", "bundled"]

BAD_OPTIONS: dict[str, tuple[list[str], str]] = {
    # cause 4: numbers not range-checked
    "negative seed": ([*RUN, "--seed", "-5"], "--seed"),
    "seed past 2^32-1": ([*RUN, "--seed", "4294967296"], "--seed"),
    "train seed past 2^32-1": ([*TRAIN, "--seed", "4294967296"], "--seed"),
    "sweep NaN": ([*RUN, "--sweep", "beta=NaN"], "--sweep"),
    "sweep Infinity": ([*RUN, "--sweep", "latent_dim=Infinity"], "--sweep"),
    "space NaN": ([*RUN, "--space", "beta=NaN:2"], "--space"),
    "space Infinity": ([*RUN, "--space", "latent_dim=1:Infinity"], "--space"),
    "space 1e999": ([*RUN, "--space", "beta=0.5:1e999"], "--space"),
    "log range from 0": ([*RUN, "--space", "beta=0:2"], "log scale"),
    "log range below 0": ([*RUN, "--space", "beta=-1:2"], "--space"),
    "timeout inf": ([*RUN, "--timeout", "inf"], "--timeout"),
    "timeout nan": ([*RUN, "--timeout", "nan"], "--timeout"),
    "eta 1": ([*RUN, "--eta", "1"], "--eta"),
    "noise margin -1": ([*RUN, "--noise-margin", "-1"], "--noise-margin"),
    "noise margin nan": ([*RUN, "--noise-margin", "nan"], "--noise-margin"),
    "envelope -1": ([*RUN, "--envelope", "-1"], "--envelope"),
    "a million workers": ([*RUN, "--workers", "1000000"], "--workers"),
    "repeats 10^7": ([*RUN, "--sweep", "latent_dim=2,4", "--repeats", "10000000"], "--repeats"),
    "trials 10^12": ([*RUN, "--trials", "1000000000000"], "--trials"),
    "total trials 0": ([*RUN, "--total-trials", "0"], "--total-trials"),
    "total trials 10^12": ([*RUN, "--total-trials", "1000000000000"], "--total-trials"),
    "gpu -1": ([*RUN, "--gpus", "-1"], "--gpus"),
    "heartbeat 0": ([*RUN, "--heartbeat-interval", "0"], "--heartbeat-interval"),
    "epochs 10^8": ([*RUN, "--epochs", "100000000"], "--epochs"),
    "latent dim 10^5": ([*TRAIN, "--latent-dim", "100000"], "--latent-dim"),
    "filters 0": ([*TRAIN, "--filters", "0"], "--filters"),
    "50 layers": ([*TRAIN, "--layers", "50"], "--layers"),
    "beta nan": ([*TRAIN, "--beta", "nan"], "--beta"),
    "beta -1": ([*TRAIN, "--beta", "-1"], "--beta"),
    "batch 0": ([*TRAIN, "--batch-size", "0"], "--batch-size"),
    # cause 5: categorical --space values never checked
    "space filters=0": ([*RUN, "--space", "filters=0"], "filters"),
    "space filters=8,0": ([*RUN, "--space", "filters=8,0"], "filters"),
    "space loss=foo": ([*RUN, "--space", "loss=foo"], "loss"),
    "space loss twice": ([*RUN, "--space", "loss=bce,bce"], "twice"),
    "space list value": ([*RUN, "--space", "dense_units=[1]"], "dense_units"),
    "space 100 layers": ([*RUN, "--space", "n_layers=1:100"], "n_layers"),
    # cause 8: dashboard ports
    "port 99999": (["dashboard", "--port", "99999"], "--port"),
    "port -1": (["dashboard", "--port", "-1"], "--port"),
    "report format": (["report", "--format", "pdfx"], "--format"),
    "empty host": (["dashboard", "--host", " "], "--host"),
}


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option_values_are_refused_before_anything_happens(workdir, capsys, case):
    argv, expected = BAD_OPTIONS[case]
    before = snapshot(workdir)
    line = refused(argv, capsys)
    assert expected in line, line
    assert snapshot(workdir) == before


# -- output places (cause 7) ------------------------------------------------------------------


def _output_cases(root: Path) -> dict[str, list[str]]:
    a_file = root / "inputs" / "a-file"
    a_file.write_text("not a folder")
    (root / "inputs" / "out" / "report.html").mkdir(parents=True)
    return {
        "train --save an existing file": [*TRAIN, "--save", str(a_file)],
        "train --save under a file": [*TRAIN, "--save", str(a_file / "sub")],
        "report --out an existing file": ["report", "--out", str(a_file), "--format", "html"],
        "report --out under a file": ["report", "--out", str(a_file / "x"), "--format", "html"],
        "report.html is a folder": ["report", "--out", str(root / "inputs" / "out")],
        "run --artifacts under a file": [*RUN, "--artifacts", str(a_file / "artifacts")],
    }


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(
    "case",
    [
        "train --save an existing file",
        "train --save under a file",
        "report --out an existing file",
        "report --out under a file",
        "report.html is a folder",
        "run --artifacts under a file",
    ],
)
def test_unusable_output_places_are_refused_up_front(workdir, capsys, case):
    argv = _output_cases(workdir)[case]
    before = snapshot(workdir)
    line = refused(argv, capsys)
    assert "a-file" in line or "report.html" in line, line
    assert snapshot(workdir) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_an_unwritable_output_folder_is_refused(workdir, capsys):
    locked = workdir / "inputs" / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        before = snapshot(workdir)
        line = refused([*TRAIN, "--save", str(locked / "out")], capsys)
        assert "not writable" in line
        assert snapshot(workdir) == before
    finally:
        locked.chmod(0o700)


# -- storage is opened last (cause 6) -----------------------------------------------------


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_a_refused_run_creates_no_storage_so_workers_can_follow(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "missing.csv")
    refused(["run", "--preset", "smoke", "--data", missing], capsys)
    refused(["run", "--data", missing, "--storage", "sqlite:///newdir/x.db"], capsys)
    assert snapshot(tmp_path) == {}
    # Nothing was left behind, so a --workers run is refused for its data, not because the
    # study "already lives in" a SQLite file the first attempt created.
    line = refused(["run", "--preset", "smoke", "--workers", "2", "--data", missing], capsys)
    assert "not found" in line and "already lives" not in line
    assert snapshot(tmp_path) == {}


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_a_refused_run_on_an_existing_study_changes_no_byte(workdir, capsys):
    before = snapshot(workdir)
    for argv in (
        [*RUN, "--space", "filters=0"],
        [*RUN, "--space", "loss=foo"],
        ["run", "--preset", "smoke", "--data", str(workdir / "inputs" / "missing.csv")],
    ):
        refused(argv, capsys)
    assert snapshot(workdir) == before


# -- dashboard (cause 8) ----------------------------------------------------------------------


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("problem", ["busy port", "bad host"])
def test_dashboard_that_cannot_listen_is_one_line_and_creates_no_folder(
    workdir, capsys, monkeypatch, problem
):
    elsewhere = workdir / "inputs" / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    storage = f"sqlite:///{workdir / 'studies' / (STUDY + '.db')}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        host = "127.0.0.1" if problem == "busy port" else "256.1.1.1"
        before = snapshot(workdir)
        line = refused(
            ["dashboard", "--storage", storage, "--host", host, "--port", str(port)], capsys
        )
    assert "cannot listen" in line
    assert snapshot(workdir) == before  # no studies/mnist-vae/artifacts in `elsewhere`


@pytest.mark.timeout(120)
def test_reading_a_study_from_another_folder_creates_only_the_report(workdir, capsys, monkeypatch):
    elsewhere = workdir / "inputs" / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    storage = f"sqlite:///{workdir / 'studies' / (STUDY + '.db')}"
    before = snapshot(workdir)
    assert main(["report", "--storage", storage, "--out", "out", "--format", "html"]) == 0
    after = snapshot(workdir)
    assert set(after) - set(before) == {"inputs/elsewhere/out", "inputs/elsewhere/out/report.html"}
    # `report` also writes the dashboard note and figures into the study (README: "The study
    # in optuna-dashboard"), so the storage file may change; nothing else may.
    database = f"studies/{STUDY}.db"
    assert after[database].startswith("file:")
    assert all(after[path] == kind for path, kind in before.items() if path != database)


def test_a_relative_stored_artifact_folder_is_found_next_to_the_storage(tmp_path, monkeypatch):
    from search.paths import stored_artifacts_dir

    (tmp_path / "studies" / "s" / "artifacts").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "studies")  # not where `run` was started
    found = stored_artifacts_dir("studies/s/artifacts", f"sqlite:///{tmp_path}/studies/s.db")
    assert found == tmp_path / "studies" / "s" / "artifacts"
    assert stored_artifacts_dir(str(found), "memory:") == found
    missing = stored_artifacts_dir("elsewhere/artifacts", "sqlite:///studies/s.db")
    assert missing == tmp_path / "studies" / "elsewhere" / "artifacts" and not missing.exists()


# -- credentials (cause 10) -------------------------------------------------------------------


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_a_password_with_at_signs_is_never_shown(workdir, capsys):
    from search.storage import redact_url

    url = "postgresql://vae:hunter@2secret@127.0.0.1:1/optuna"
    assert redact_url(url) == "postgresql://vae:***@127.0.0.1:1/optuna"
    before = snapshot(workdir)
    line = refused(["studies", "--storage", url], capsys)
    assert "2secret" not in line and "hunter" not in line, line
    assert "127.0.0.1" in line  # the host is read as the host, not as part of the password
    assert snapshot(workdir) == before


# -- end to end: a real process, bounded by the subprocess timeout ----------------------------


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_special_files_end_to_end_never_hang_and_never_load_tensorflow(tmp_path):
    os.mkfifo(tmp_path / "train.csv")
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    existing_study(tmp_path)
    before = snapshot(tmp_path)
    for source in ("train.csv", "zero.npz"):
        result = run_cli("run", "--preset", "smoke", "--data", source, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    # Refused input is refused before TensorFlow is imported (seconds, and GPU memory, saved).
    script = textwrap.dedent(
        """
        import sys
        from search.cli import main
        for argv in (
            ["run", "--data", "train.csv"],
            ["train", "--data", "zero.npz"],
            ["run", "--data", "bundled", "--space", "filters=0"],
            ["run", "--data", "bundled", "--seed", "4294967296"],
            ["train", "--data", "bundled", "--save", "zero.npz"],
        ):
            assert main(argv) == 2, argv
        assert "tensorflow" not in sys.modules, "TensorFlow was imported"
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert snapshot(tmp_path) == before


def test_parameter_limits_agree_with_the_model():
    from search.defaults import LOSS_CHOICES, PARAM_LIMITS, SWEEP_BASELINE
    from search.errors import UsageError
    from search.model import DEFAULTS, LOSSES, check_params
    from search.space import param_problem

    assert tuple(LOSS_CHOICES) == tuple(LOSSES)
    for name, (low, high) in PARAM_LIMITS.items():
        assert check_params({name: low})[name] == low and param_problem(name, low) is None
        assert param_problem(name, high) is None and param_problem(name, high * 2) is not None
        assert param_problem(name, SWEEP_BASELINE[name]) is None
        assert param_problem(name, DEFAULTS[name]) is None
        below = low - 1
        assert param_problem(name, below) is not None
        with pytest.raises(UsageError):
            check_params({name: below})


@pytest.mark.slow
def test_a_new_study_records_its_artifact_folder_absolute(smoke_study):
    import optuna

    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    recorded = Path(study.user_attrs["artifacts_dir"])
    assert recorded.is_absolute() and recorded.samefile(smoke_study.artifacts)
