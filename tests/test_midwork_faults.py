"""Faults after the up-front checks (issue 20, round 2, cause 6), and writes into place.

A full disk or stdout, a closed pipe, a SQLite file deleted or cut short under a run, rows
Optuna cannot read, truncated artifacts and weights, a stored batch size of 0: each is one
`error:` line (or a clear note where the work goes on), never a traceback, never a file that
looks whole and is not, and a study left resumable. Real storages, real training on tiny
settings; the full disks are small tmpfs mounts (skipped where mounting is not allowed).
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.atomic import AtomicArtifactStore, write_into_place
from search.cli import main
from search.faults import EXIT_BROKEN_PIPE, EXIT_FAULT
from search.report.artifacts import ArtifactReader
from tests.conftest import TINY, run_cli, small_tmpfs
from tests.hostile import existing_study, refused, snapshot

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
NO_REPORT = ("--confirm", "0", "--no-report")


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 400 KiB tmpfs: a study's database fits, one trial's artifacts (its weights) do not."""
    with small_tmpfs(tmp_path / "disk", "400k") as mount:
        yield mount


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real one-trial TINY study that kept its weights: studies/mnist-vae.db + artifacts."""
    root = tmp_path_factory.mktemp("trained")
    done = run_cli("run", "--trials", "1", *TINY, "--confirm", "0", "--no-report", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _copy(trained: Path, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(trained / "studies", root / "studies")
    return root


def _artifact(root: Path, name: str) -> Path:
    study = optuna.load_study(study_name="mnist-vae", storage=_url(root))
    ids = records.read_artifact_ids(records.trial_attrs(study.trials[0]))
    return root / "studies" / "mnist-vae" / "artifacts" / ids[name]


def _url(root: Path) -> str:
    return f"sqlite:///{root}/studies/mnist-vae.db"


# -- stdout -----------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_stdout_to_a_full_device_is_one_error_line(tmp_path: Path) -> None:
    existing_study(tmp_path)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "search", "studies", "--json"],
            cwd=tmp_path,
            env=ENV,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == EXIT_FAULT
    assert _errors(done.stderr) == done.stderr.strip().splitlines()
    assert len(_errors(done.stderr)) == 1 and "No space left" in done.stderr


def test_a_reader_that_went_away_is_no_error(tmp_path: Path) -> None:
    """`studies --json | true`: exit as Unix tools do when the pipe closes, silently."""
    existing_study(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "search", "studies", "--json"],
            cwd=tmp_path,
            env=ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE
    assert done.stderr == ""


# -- rows Optuna cannot read -------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE trial_values SET value = NULL WHERE objective = 0",
        "UPDATE trial_user_attributes SET value_json = NULL",
        "UPDATE trial_params SET param_value = NULL",
    ],
)
def test_a_null_value_row_is_named_and_left_alone(tmp_path: Path, capsys, damage: str) -> None:
    os.chdir(tmp_path)
    db = existing_study(tmp_path)
    with sqlite3.connect(db) as conn:
        if "user_attributes" in damage:
            conn.execute(
                "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (1, 'k', 'x')"
            )
        conn.execute(damage)
    before = snapshot(tmp_path)
    for argv in (["report", "--format", "html"], ["export", "--out", "out"]):
        line = refused(argv, capsys)
        assert "is damaged: trial 0 holds a NULL" in line
    assert main(["studies"]) == 0
    assert "is damaged" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


# -- truncated artifacts ------------------------------------------------------------------------


def test_truncated_artifacts_read_as_missing(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, z_mean=np.zeros((50, 2), np.float32), labels=np.arange(50))
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(
        png, format="PNG"
    )
    (tmp_path / "latent").write_bytes(buffer.getvalue()[:300])
    (tmp_path / "grid").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    reader = ArtifactReader(tmp_path)
    assert reader.read_latent("latent") is None
    assert reader.read_png("grid") is None
    assert sorted(reader.missing) == ["grid", "latent"]


@pytest.mark.slow
def test_a_truncated_latent_npz_still_gives_a_report_that_says_so(
    trained: Path, tmp_path: Path, capsys
) -> None:
    root = _copy(trained, tmp_path)
    os.chdir(root)
    latent = _artifact(root, "latent")
    latent.write_bytes(latent.read_bytes()[:200])
    artifacts = str(root / "studies" / "mnist-vae" / "artifacts")
    assert main(["report", "--format", "html", "--artifacts", artifacts]) == 0
    html = (root / "studies" / "mnist-vae" / "report.html").read_text()
    assert "no readable `latent` artifact" in html
    assert "could not be read (missing, truncated" in html


def test_report_says_on_stderr_in_one_line_which_artifacts_it_could_not_read(
    trained: Path, tmp_path: Path
) -> None:
    root = _copy(trained, tmp_path)
    for name in ("latent", "grid", "diagnostics"):
        damaged = _artifact(root, name)
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 3])
    artifacts = str(root / "studies" / "mnist-vae" / "artifacts")
    done = run_cli("report", "--format", "html", "--artifacts", artifacts, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr[-3000:]  # one line for all of them
    line = warnings[0]
    assert line.startswith("warning: 3 stored artifacts could not be read from ")
    for kind in ("diagnostics", "grid", "latent"):
        assert f"{kind} of trial 0" in line
    assert "missing, truncated or not of their kind" in line
    assert line.endswith("the report says so in its notes")
    assert len(line) < 400 + len(artifacts)
    html = (root / "studies" / "mnist-vae" / "report.html").read_text()
    assert "3 artifacts could not be read (missing, truncated" in html


# -- export --------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "another model"])
def test_export_refuses_weights_that_do_not_load_whole(
    trained: Path, tmp_path: Path, capsys, damage: str
) -> None:
    root = _copy(trained, tmp_path)
    os.chdir(root)
    weights = _artifact(root, "model")
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:5000])
    else:
        from search.model import build_vae, check_params

        other = build_vae(check_params({"latent_dim": 3, "n_layers": 1, "filters": 8}))
        write_into_place(weights.with_suffix(".weights.h5"), other.save_weights)
        weights.with_suffix(".weights.h5").replace(weights)
    artifacts = str(root / "studies" / "mnist-vae" / "artifacts")
    line = refused(["export", "--out", "out", "--artifacts", artifacts], capsys)
    assert "stored weights" in line and "do not load" in line
    assert not (root / "out").exists() or not any((root / "out").iterdir())


def test_a_stored_batch_size_of_0_is_refused_before_training(
    trained: Path, tmp_path: Path, capsys
) -> None:
    root = _copy(trained, tmp_path)
    os.chdir(root)
    _artifact(root, "model").unlink()  # no weights: export trains the trial again
    study = optuna.load_study(study_name="mnist-vae", storage=_url(root))
    study._storage.set_study_system_attr(  # where format 4 keeps the budget
        study._study_id,
        records.MACHINE_PREFIX + records.BUDGET,
        {**records.read_budget(records.study_attrs(study)), "batch_size": 0},
    )
    artifacts = str(root / "studies" / "mnist-vae" / "artifacts")
    line = refused(["export", "--out", "out", "--artifacts", artifacts], capsys)
    assert "batch_size 0" in line


# -- writes into place ----------------------------------------------------------------------------


class _DiesHalfWay(io.RawIOBase):
    """A stream that gives some bytes, then fails as a killed copy or a full disk would."""

    def __init__(self) -> None:
        self.given = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.given:
            raise OSError(28, "No space left on device")
        self.given = True
        buffer[:4] = b"half"
        return 4


def test_an_interrupted_artifact_write_leaves_no_file_under_its_name(tmp_path: Path) -> None:
    store = AtomicArtifactStore(tmp_path)
    with pytest.raises(OSError) as raised:
        store.write("an-id", _DiesHalfWay())  # type: ignore[arg-type]
    assert raised.value.filename == str(tmp_path / "an-id")  # the final name, not the temporary
    assert list(tmp_path.iterdir()) == []
    store.write("an-id", io.BytesIO(b"whole"))
    assert (tmp_path / "an-id").read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


def test_a_killed_write_leaves_no_file_under_its_name(tmp_path: Path) -> None:
    """kill -9 in the middle of a trial output's write: nothing under the final name."""
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom search.atomic import write_into_place\n"
        "def slow(path):\n    path.write_bytes(b'half')\n    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        f"write_into_place(Path({str(tmp_path / 'latent.npz')!r}), slow)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    process.kill()
    process.wait(timeout=30)
    assert not (tmp_path / "latent.npz").exists()


# -- full disks ---------------------------------------------------------------------------------


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)


def test_a_full_disk_during_report_out_is_one_line_and_no_file(small_disk: Path, capsys) -> None:
    os.chdir(small_disk.parent)
    existing_study(small_disk.parent)
    _fill(small_disk / "filler")
    capsys.readouterr()
    assert main(["report", "--format", "html", "--out", str(small_disk)]) == EXIT_FAULT
    err = capsys.readouterr().err
    assert len(_errors(err)) == 1 and "report.html: No space left on device" in err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.slow
def test_a_full_disk_during_a_run_fails_the_trial_and_the_study_resumes(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk}/s.db"
    artifacts = small_disk / "artifacts"
    done = run_cli(
        "run", "--trials", "2", *TINY, "--confirm", "0", "--no-report",
        "--storage", url, "--artifacts", str(artifacts), cwd=small_disk.parent,
    )  # fmt: skip
    assert done.returncode == EXIT_FAULT, done.stderr[-3000:]
    errors = _errors(done.stderr)
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr[-3000:]
    assert "trial 0 was marked FAIL" in errors[0] and "resume with: " in errors[0]
    trial = optuna.load_study(study_name="mnist-vae", storage=url).trials[0]
    assert trial.state == TrialState.FAIL
    assert "No space left on device" in trial.user_attrs[records.FAIL_REASON]
    assert list(artifacts.iterdir()) == []  # the failed trial's artifacts went, none half
    # space back: the printed command resumes the study
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    resume = errors[0].split("resume with: ", 1)[1].split()
    assert resume[:3] == ["python", "-m", "search"]
    again = run_cli(*resume[3:], "--confirm", "0", "--no-report", cwd=small_disk.parent)
    assert again.returncode == 0, again.stderr[-3000:]
    states = [t.state for t in optuna.load_study(study_name="mnist-vae", storage=url).trials]
    assert states.count(TrialState.COMPLETE) == 2


# -- the SQLite file under a run ------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
@pytest.mark.slow
def test_a_sqlite_file_deleted_or_cut_short_mid_run_is_one_line(
    tmp_path: Path, damage: str
) -> None:
    db = tmp_path / "studies" / "mnist-vae.db"
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "search", "run", "--trials", "3", *TINY, *NO_REPORT],
            cwd=tmp_path,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        while "trial    0" not in log.read_text():  # the first trial is stored
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        if damage == "deleted":
            db.unlink()
        else:
            os.truncate(db, 40_000)
        code = process.wait(timeout=300)
    finally:
        process.kill()
    text = log.read_text()
    assert code == EXIT_FAULT, text[-3000:]
    errors = _errors(text)
    assert len(errors) == 1 and "the SQLite storage failed" in errors[0], text[-3000:]
    if damage == "deleted":
        assert "was deleted while the run used it" in errors[0]
        assert not db.exists()  # never recreated empty, as if the study were new
