"""`export`: the chosen model as plain Keras files, loaded where vae-search cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from tests.conftest import run_cli

# Runs in `python -I` (no PYTHONPATH, no current folder on sys.path) with `search` blocked
# outright, so the editable install cannot sneak it in either: a .keras file that needed the
# package's classes would fail to load here.
LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["search"] = None  # every `import search...` now raises ImportError
    try:
        import search  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("vae-search is importable: the test would prove nothing")
    import keras
    import numpy as np

    folder, images_file, out_file = sys.argv[1:4]
    encoder = keras.saving.load_model(folder + "/encoder.keras")
    decoder = keras.saving.load_model(folder + "/decoder.keras")
    images = np.load(images_file)
    z_mean, z_log_var = encoder(images)
    reconstructions = decoder(z_mean)
    np.savez(
        out_file,
        z_mean=np.asarray(z_mean),
        z_log_var=np.asarray(z_log_var),
        reconstructions=np.asarray(reconstructions),
        modules=np.array(
            sorted(m for m, v in sys.modules.items() if v and m.split(".")[0] == "search")
        ),
    )
    """
)


def _export(smoke_study, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(
        "export",
        "--study",
        smoke_study.name,
        "--storage",
        smoke_study.storage,
        "--out",
        str(out),
        *extra,
        cwd=smoke_study.workdir,
    )


def _test_images(config: dict) -> np.ndarray:
    """The held-out images the study scored, rebuilt from config.json's own provenance."""
    from search.data import load_mnist
    from search.defaults import PRESETS

    data = config["data"]
    budget = config["budget"]
    loaded = load_mnist(data["source"], seed=data["seed"], subset=budget["subset"])
    return loaded.test.images[: PRESETS[budget["preset"]].test_eval_subset]


def _load_without_package(folder: Path, images: np.ndarray, tmp_path: Path) -> dict:
    images_file, out_file = tmp_path / "images.npy", tmp_path / "outputs.npz"
    np.save(images_file, images)
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_PACKAGE)
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(folder), str(images_file), str(out_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out_file) as outputs:
        return {name: outputs[name] for name in outputs.files}


@pytest.mark.slow
def test_export_recommendation_loads_without_the_package_and_reproduces_its_metrics(
    smoke_study, tmp_path
):
    from search.metrics import mse_per_image, ssim_per_image

    out = tmp_path / "model"
    result = _export(smoke_study, out)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.name for p in out.iterdir())
    assert written == ["config.json", "decoder.keras", "encoder.keras"]
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] == "stored"

    # The exported trial is the report's recommendation.
    from search.report import report_context

    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    recommendation = report_context(study, smoke_study.artifacts).summary.recommendation
    assert recommendation is not None
    assert config["trial"] in recommendation.numbers
    assert config["params"]["latent_dim"] == recommendation.params["latent_dim"]
    trial = study.trials[config["trial"]]
    assert config["seed"] == trial.user_attrs["seed"]
    assert config["metrics"]["validation"] == {"ssim": trial.values[0], "mse": trial.values[1]}
    assert config["study"]["name"] == smoke_study.name
    assert config["study"]["trials"]["complete"] == sum(
        t.state == optuna.trial.TrialState.COMPLETE for t in study.trials
    )

    images = _test_images(config)
    outputs = _load_without_package(out, images, tmp_path)
    assert outputs["modules"].size == 0
    k = config["params"]["latent_dim"]
    assert outputs["z_mean"].shape == outputs["z_log_var"].shape == (len(images), k)
    reconstructions = outputs["reconstructions"]
    assert reconstructions.shape == (len(images), 28, 28, 1)
    assert reconstructions.min() >= 0.0 and reconstructions.max() <= 1.0
    # The files reproduce what the study measured on its test images.
    test = config["metrics"]["test"]
    assert float(mse_per_image(images, reconstructions).mean()) == pytest.approx(
        test["mse"], rel=1e-5
    )
    assert float(ssim_per_image(images, reconstructions).mean()) == pytest.approx(
        test["ssim"], rel=1e-5
    )


@pytest.mark.slow
def test_export_without_kept_weights_retrains_from_parameters_and_seed(smoke_study, tmp_path):
    out = tmp_path / "retrained"
    empty_store = tmp_path / "no-artifacts"
    result = _export(smoke_study, out, "--artifacts", str(empty_store))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kept no weights: training it again" in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] == "retrained"
    # Same parameters, seed, data and budget: the retrained run measures what the stored did.
    for split in ("validation", "test"):
        for name in ("ssim", "mse"):
            assert config["retrained_metrics"][split][name] == pytest.approx(
                config["metrics"][split][name], rel=1e-3
            )
    outputs = _load_without_package(out, _test_images(config)[:20], tmp_path)
    assert outputs["reconstructions"].shape == (20, 28, 28, 1)


@pytest.mark.parametrize("case", ["missing trial", "pruned trial", "out is a file"])
def test_export_bad_input_is_one_line_and_writes_nothing(smoke_study, tmp_path, case):
    study = optuna.load_study(study_name=smoke_study.name, storage=smoke_study.storage)
    out = tmp_path / "out"
    extra: list[str] = []
    if case == "missing trial":
        extra = ["--trial", "999"]
    elif case == "pruned trial":
        pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
        assert pruned, "the smoke study has no pruned trial"
        extra = ["--trial", str(pruned[0].number)]
    else:
        out.write_text("not a folder")
    result = _export(smoke_study, out, *extra)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    if case == "out is a file":
        assert out.read_text() == "not a folder"
    else:
        assert not out.exists()


def test_export_picks_the_run_nearest_the_mean_and_carries_the_configuration(tmp_path):
    """Of the recommended configuration's three runs, the one nearest its mean is exported
    (not the luckiest), and config.json holds the configuration's mean, SD and n beside it."""
    from search.export import configuration_metrics, plan_export
    from search.report.trials import read_study
    from tests.report_fixtures import FixtureRun, build_runs_study

    runs = [
        FixtureRun({"latent_dim": 4}, 0.900, 0.0400, train_mse=0.036),  # the lucky seed
        FixtureRun({"latent_dim": 2}, 0.700, 0.0700, train_mse=0.066),
        FixtureRun({"latent_dim": 4}, 0.850, 0.0450, train_mse=0.041, confirms=0),
        FixtureRun({"latent_dim": 4}, 0.800, 0.0500, train_mse=0.046, confirms=0),
    ]
    records = read_study(build_runs_study(tmp_path, runs, name="export-plan"))
    plan = plan_export(records, tmp_path / "no-artifacts")
    assert plan.trial.number == 2  # 0.850 / 0.0450 is the mean itself
    assert "trial 2, of its 3 runs the one nearest their mean" in plan.chosen_by
    block = configuration_metrics(records, plan.numbers)
    assert block["n"] == 3 and block["trials"] == [0, 2, 3]
    assert block["validation"]["ssim"]["mean"] == pytest.approx(0.850)
    assert block["validation"]["ssim"]["sd"] == pytest.approx(0.05)
    assert block["validation"]["mse"]["n"] == 3


@pytest.mark.slow
def test_export_retrains_a_run_that_trained_on_the_extra_unlabeled_images(tmp_path):
    """Seen: the retraining read the flag from the data counts, where it never is, so a study
    run with --extra-unlabeled was retrained without those images (other data, other model)."""
    from tests.conftest import TINY

    ran = run_cli(
        "run", "--trials", "1", *TINY, "--extra-unlabeled", "--confirm", "0", "--no-report",
        "--seed", "3", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = tmp_path / "retrained"
    result = run_cli(
        "export", "--study", "mnist-vae", "--out", str(out),
        "--artifacts", str(tmp_path / "no-artifacts"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] == "retrained"
    for name in ("ssim", "mse"):
        assert config["retrained_metrics"]["validation"][name] == pytest.approx(
            config["metrics"]["validation"][name], rel=1e-3
        )


def test_an_interrupted_write_leaves_nothing_under_the_final_name(tmp_path):
    """Seen: kill -9 during `export` left a 0-byte encoder.keras under its final name."""
    from search.export import write_into_place

    target = tmp_path / "encoder.keras"

    def dies_half_way(path: Path) -> None:
        path.write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_into_place(target, dies_half_way)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor the temporary one
    write_into_place(target, lambda path: path.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


@pytest.mark.slow
def test_a_second_export_into_the_same_folder_is_whole_or_has_no_config(smoke_study, tmp_path):
    """An earlier export's config.json beside half-replaced models would pass for an export:
    it is removed before the models are written and written again last."""
    out = tmp_path / "twice"
    assert _export(smoke_study, out).returncode == 0
    first = (out / "config.json").stat().st_mtime_ns
    again = _export(smoke_study, out)
    assert again.returncode == 0, again.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "decoder.keras", "encoder.keras"]
    assert (out / "config.json").stat().st_mtime_ns > first
    assert (out / "config.json").stat().st_mtime_ns >= (out / "decoder.keras").stat().st_mtime_ns
