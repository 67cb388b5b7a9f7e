"""search.records: every record written through real Optuna storage and read back, older formats
and hostile values read as before, the grid's one layout, and no stored key spelled elsewhere.
"""

from __future__ import annotations

import ast
import io
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import create_trial
from PIL import Image

from search import pareto, records
from search.paths import study_artifacts_dir
from search.records import artifacts
from search.report.artifacts import split_grid
from search.summaries import count_states, state_counts
from tests.report_fixtures import grid_png

SEARCH = Path(__file__).resolve().parents[1] / "search"


def _storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'records.db'}"


def _reloaded(url: str) -> optuna.Study:
    """The study read back from its storage by a new Study object (no cached attrs)."""
    return optuna.load_study(study_name="records", storage=url)


def test_study_records_round_trip(tmp_path: Path) -> None:
    url = _storage(tmp_path)
    study = optuna.create_study(study_name="records", storage=url, directions=["maximize"] * 2)
    data = {"source": "bundled", "path": None, "sha256": "ab", "counts": {"train": 4}, "seed": 0}
    records.write_study_record(
        study,
        search_space={"latent_dim": {"type": "int", "low": 2, "high": 32}},
        distributions={"latent_dim": "{}"},
        fixed_params={"predictor": False},
        data=data,
        sampler="tpe",
        seed=7,
        artifacts_dir=str(tmp_path / "artifacts"),
    )
    records.write_budget(study, {"preset": "quick", "epochs": 3})
    records.write_pruning_settings(study, {"enabled": True, "rungs": [1]})
    records.append_run(study, study.user_attrs, {"command": "python -m search run"})
    records.append_run(_reloaded(url), _reloaded(url).user_attrs, {"command": "second"})

    attrs = records.study_attrs(_reloaded(url))
    assert records.format_version(attrs) == records.FORMAT_VERSION == 4
    assert records.is_ours(attrs)
    assert records.read_search_space(attrs) == {"latent_dim": {"type": "int", "low": 2, "high": 32}}
    assert records.read_distributions(attrs) == {"latent_dim": "{}"}
    assert records.read_fixed_params(attrs) == {"predictor": False}
    assert records.read_data(attrs) == data
    assert attrs[records.SAMPLER] == "tpe" and attrs[records.STUDY_SEED] == 7
    assert records.read_artifacts_dir(attrs) == str(tmp_path / "artifacts")
    assert records.read_budget(attrs) == {"preset": "quick", "epochs": 3}
    assert records.read_pruning_settings(attrs) == {"enabled": True, "rungs": [1]}
    assert [r["command"] for r in records.read_runs(attrs)] == ["python -m search run", "second"]
    assert {k for k in attrs if not k.startswith(records.RUN_PREFIX)} <= set(records.STUDY_KEYS)
    assert study_artifacts_dir(attrs) == tmp_path / "artifacts"
    # what the dashboard shows: short summaries; the records themselves are system attrs
    shown = _reloaded(url).user_attrs
    assert all(len(json.dumps(v)) <= records.SUMMARY_CHARS for v in shown.values()), shown
    assert shown[records.SEARCH_SPACE] == "1 parameters: latent_dim"
    assert shown[records.PRUNING] == "on: trials compared at epochs 1"
    assert records.SEARCH_SPACE_DISTRIBUTIONS not in shown
    assert records.read_runs(shown) == []  # the summaries of runs are no run entries


def test_a_version_3_study_reads_as_before(tmp_path: Path) -> None:
    """Before version 4 every study record was a user attr: `study_attrs` reads them there."""
    url = _storage(tmp_path)
    study = optuna.create_study(study_name="records", storage=url)
    stored = {
        records.FORMAT_VERSION_KEY: 3,
        records.CREATED_BY: records.CREATOR,
        records.SEARCH_SPACE: {"latent_dim": {"type": "int", "low": 2, "high": 32}},
        records.SEARCH_SPACE_DISTRIBUTIONS: {"latent_dim": "{}"},
        records.DATA: {"source": "bundled", "counts": {"train": 4}},
        records.BUDGET: {"preset": "quick", "epochs": 3},
        records.PRUNING: {"enabled": False},
        records.CONVERGENCE: {"stopped_at": 3, "converged": True},
        records.RUNS: [{"command": "first"}],
        records.RUN_PREFIX + "1": {"command": "second"},
    }
    for key, value in stored.items():
        study.set_user_attr(key, value)
    attrs = records.study_attrs(_reloaded(url))
    assert attrs == stored and records.format_version(attrs) == 3
    assert [r["command"] for r in records.read_runs(attrs)] == ["first", "second"]
    assert records.read_convergence(attrs) == {"stopped_at": 3, "converged": True}


def test_trial_records_round_trip(tmp_path: Path) -> None:
    url = _storage(tmp_path)
    study = optuna.create_study(study_name="records", storage=url, directions=["maximize"] * 2)
    trial = study.ask()
    records.write_trial_start(trial, seed=12, worker="host:1", epochs_planned=9, designed=True)
    records.write_rung_value(trial, 1, 0.5, math.nan)
    records.write_rung_value(trial, 3, 0.6, 0.02)
    curve = [{"epoch": 2, "val_ssim": 0.6}, {"epoch": 1, "val_ssim": 0.5}]
    records.write_measurements(trial, {"curve": curve, "epochs_run": 3, "test_mse": 0.03})
    records.write_pruned(trial, "rank 3 of 3", 3)
    records.write_artifacts(trial, {artifacts.GRID: "id-grid", artifacts.MODEL: "id-model"})
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    records.write_failure(failed, "NaN loss", [{"epoch": 1}])
    study.tell(failed, state=optuna.trial.TrialState.FAIL)

    pruned, fail = _reloaded(url).get_trials()
    attrs = records.trial_attrs(pruned)
    assert records.read_seed(attrs) == 12 and attrs[records.WORKER] == "host:1"
    assert records.read_epochs_planned(attrs) == 9 and records.read_epochs_run(attrs) == 3
    assert records.read_designed(attrs)
    assert [r["epoch"] for r in records.read_curve(attrs)] == [1, 2]
    assert records.read_metric(attrs, "test", "MSE") == 0.03
    assert records.read_metric(attrs, "val", "SSIM") is None
    decision = records.read_pruning_decision(attrs)
    assert decision.reason == "rank 3 of 3" and decision.at_epoch == 3
    assert decision.rung_values[3] == (0.6, 0.02)
    assert decision.rung_values[1][0] == 0.5 and math.isnan(decision.rung_values[1][1])
    assert attrs[records.RUNG_VALUES]["1"] == [0.5, None]  # null, for strict JSON readers
    assert records.read_artifact_ids(attrs) == {"grid": "id-grid", "model": "id-model"}
    assert set(attrs) <= set(records.TRIAL_KEYS)
    assert records.read_fail_reason(fail.user_attrs) == "NaN loss"
    assert records.read_epochs_run(records.trial_attrs(fail)) == 1
    assert count_states(_reloaded(url).get_trials())["PRUNED"] == 1
    assert state_counts(_reloaded(url)) == {
        "running": 0,
        "complete": 0,
        "pruned": 1,
        "fail": 1,
        "waiting": 0,
    }


def test_enqueued_tags_round_trip(tmp_path: Path) -> None:
    url = _storage(tmp_path)
    study = optuna.create_study(study_name="records", storage=url, directions=["maximize"] * 2)
    point = records.sweep_point("latent_dim", 4, 1)
    study.enqueue_trial({"latent_dim": 4}, user_attrs=records.sweep_tag(point))
    study.enqueue_trial({"latent_dim": 8}, user_attrs=records.confirmation_tag(0))
    sweep, confirmation = _reloaded(url).get_trials()
    assert records.read_sweep(sweep.user_attrs) == {"name": "latent_dim", "value": 4, "repeat": 1}
    assert records.sweep_name(sweep.user_attrs) == "latent_dim"
    assert records.sweep_value(sweep.user_attrs) == 4
    assert records.read_confirms(confirmation.user_attrs) == 0
    for trial in (sweep, confirmation):
        assert records.read_designed(trial.user_attrs)
        assert records.enqueued(trial.system_attrs)


def test_version_1_studies_read_as_before(tmp_path: Path) -> None:
    """A study as vae-search wrote it before the format version (commit 6006fe1 and older): no
    version key, sweep trials without `designed`, an artifact folder relative to where `run`
    started."""
    url = f"sqlite:///{tmp_path / 'studies' / 'old.db'}"
    (tmp_path / "studies" / "old" / "artifacts").mkdir(parents=True)
    study = optuna.create_study(study_name="old", storage=url, directions=["maximize", "minimize"])
    study.set_user_attr("created_by", "vae-search")
    study.set_user_attr("artifacts_dir", "studies/old/artifacts")
    distributions = {"latent_dim": IntDistribution(2, 32)}
    for attrs in ({"sweep": {"name": "latent_dim", "value": 8}}, {"confirms": 0}, {}):
        study.add_trial(
            create_trial(
                params={"latent_dim": 8},
                distributions=distributions,
                values=[0.6, 0.03],
                user_attrs={"seed": 1, "epochs_run": 3, **attrs},
            )
        )
    attrs = _reloaded_named(url, "old").user_attrs
    assert records.format_version(attrs) == 1 and records.is_ours(attrs)
    swept, confirmation, sampled = _reloaded_named(url, "old").get_trials()
    assert records.read_designed(swept.user_attrs) and records.read_designed(
        confirmation.user_attrs
    )
    assert not records.read_designed(sampled.user_attrs)
    assert records.read_seed(sampled.user_attrs) == 1
    found = study_artifacts_dir(attrs, url)
    assert found == tmp_path / "studies" / "old" / "artifacts"
    assert study_artifacts_dir({}, None, "fallback") == Path("fallback")
    assert study_artifacts_dir({}) is None


def _reloaded_named(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


HOSTILE = [None, "", "text", "1e999", math.nan, math.inf, -1, True, [], [1, 2], {"x": 1}, b"\x00"]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_readers_treat_hostile_values_as_absent(value: object) -> None:
    study = {key: value for key in records.STUDY_KEYS}
    trial = {key: value for key in records.TRIAL_KEYS}
    assert records.format_version(study) >= 1
    assert not records.is_ours(study)
    assert isinstance(records.read_search_space(study), dict)
    assert isinstance(records.read_fixed_params(study), dict)
    assert records.read_data(study) is None or isinstance(value, dict)
    assert records.read_budget(study) is None or isinstance(value, dict)
    assert isinstance(records.read_pruning_settings(study), dict)
    assert isinstance(records.read_runs(study), list)
    text = isinstance(value, str) and value
    assert records.read_artifacts_dir(study) == (value if text else None)
    assert isinstance(records.read_sweep(trial), dict)
    assert isinstance(records.read_designed(trial), bool)
    assert isinstance(records.read_curve(trial), list)
    for number in (
        records.read_seed(trial),
        records.read_confirms(trial),
        records.read_epochs_run(trial),
        records.read_epochs_planned(trial),
        records.read_metric(trial, "test", "mse"),
    ):
        assert number is None or math.isfinite(number)
    assert isinstance(records.read_artifact_ids(trial), dict)
    decision = records.read_pruning_decision(trial)
    assert isinstance(decision.rung_values, dict)


def test_the_written_grid_splits_into_its_two_halves() -> None:
    """The writer's grid (originals | 8-px gap | reconstructions, 568 x 280) is split into the
    two mosaics exactly: before one layout served both, the splitter expected two squares
    without a gap, and the report showed every real grid whole."""
    from search.outputs import comparison_grid

    rng = np.random.default_rng(0)
    originals, reconstructions = rng.random((100, 28, 28)), rng.random((100, 28, 28))
    pixels = comparison_grid(originals, reconstructions)
    assert pixels.shape == (artifacts.GRID_LAYOUT.height, artifacts.GRID_LAYOUT.width) == (280, 568)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    halves = split_grid(buffer.getvalue())
    assert halves is not None
    left, right = (np.asarray(Image.open(io.BytesIO(h))) for h in halves)
    assert np.array_equal(left, pixels[:, :280])
    assert np.array_equal(right, pixels[:, 288:])
    # the report fixtures draw the same layout
    assert Image.open(io.BytesIO(grid_png(0.02))).size == (568, 280)
    assert split_grid(grid_png(0.02)) is not None
    # an image of another layout is shown whole
    other = io.BytesIO()
    Image.fromarray(np.zeros((280, 400), dtype=np.uint8), mode="L").save(other, format="PNG")
    assert split_grid(other.getvalue()) is None


def test_pareto_helpers_agree_with_the_definition() -> None:
    points = np.array([[0.1, 0.9], [0.1, 0.9], [0.5, 0.5], [0.6, 0.6], [0.9, 0.1]])
    assert pareto.non_dominated(points).tolist() == [True, True, True, False, True]
    assert pareto.non_dominated_sort(points) == [[0, 1, 2, 4], [3]]
    assert pareto.dominated_by_any(points[3], points[:3])
    assert not pareto.dominated_by_any(points[0], points[1:])  # an equal point does not dominate
    assert not pareto.dominated_by_any([math.nan, 0.0], points)
    measured = [(0.7, 0.02), (0.8, 0.01)]  # (ssim, mse): the second dominates the first
    assert pareto.dominated_by_any(measured[0], measured[1:], maximize=(True, False))
    assert not pareto.dominated_by_any(measured[1], measured[:1], maximize=(True, False))
    assert not pareto.dominated_by_any(measured[0], [], maximize=(True, False))
    assert pareto.dominates(points[2], points[3]) and not pareto.dominates(points[0], points[1])
    reference = np.array([1.0, 1.0])
    assert pareto.hypervolume_2d(points, reference) == pytest.approx(
        0.9 * 0.1 + 0.5 * 0.4 + 0.1 * 0.4
    )
    assert pareto.hypervolume_2d(np.zeros((0, 2)), reference) == 0.0
    assert pareto.minimised([[0.7, 0.02]], (True, False)).tolist() == [[-0.7, 0.02]]


# Where a stored key is spelled: the argument of these calls, or `.get`, a subscript or `in` on
# a stored mapping.
_ATTR_METHODS = {
    "set_user_attr",
    "set_system_attr",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "number_attr",
    "int_attr",
    "text_attr",
    "dict_attr",
}
# The report's section modules, written in the same change as search/records/, still read a
# few keys directly: each is listed until it is converted.
_NOT_YET: set[str] = set()  # every module now reads stored keys through search.records


def _holds_attrs(node: ast.expr) -> bool:
    """Is `node` a stored mapping: `*attrs` (user_attrs, system_attrs, records.attrs) or the
    `stored` local the run uses? (A curve row or the data record may share a key's name.)"""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return "attrs" in name or name == "stored"


def _stored_key_literals(tree: ast.AST, keys: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        candidates: list[ast.expr] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, node.func.value
            if node.args and (
                method in _ATTR_METHODS or (method == "get" and _holds_attrs(receiver))
            ):
                candidates.append(node.args[1 if method.startswith("set_trial_") else 0])
            for keyword in node.keywords:
                if keyword.arg == "user_attrs" and isinstance(keyword.value, ast.Dict):
                    candidates += [k for k in keyword.value.keys if k is not None]
        elif isinstance(node, ast.Subscript) and _holds_attrs(node.value):
            candidates.append(node.slice)
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(o, ast.In) for o in node.ops)
            and any(_holds_attrs(c) for c in node.comparators)
        ):
            candidates.append(node.left)
        found += [
            (c.lineno, c.value)
            for c in candidates
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in keys
        ]
    return found


def test_no_module_but_records_spells_a_stored_key() -> None:
    keys = set(records.STUDY_KEYS) | set(records.TRIAL_KEYS) | set(artifacts.ARTIFACT_FILES)
    keys |= {records.OPTUNA_RETRY_HISTORY, records.HEARTBEAT}
    offenders = []
    for path in sorted(SEARCH.rglob("*.py")):
        name = path.relative_to(SEARCH).as_posix()
        if name in _NOT_YET or name.startswith("records/"):
            continue
        for line, key in _stored_key_literals(ast.parse(path.read_text()), keys):
            offenders.append(f"search/{name}:{line}: {key!r}")
    assert not offenders, "stored keys spelled outside search/records/:\n" + "\n".join(offenders)


def test_the_check_finds_a_spelled_key() -> None:
    """The check above can fail: it sees each form a stored key takes in code."""
    code = (
        "trial.set_user_attr('seed', 1)\n"
        "x = attrs['curve']\n"
        "y = 'sweep' in attrs\n"
        "z = t.int_attr('confirms')\n"
        "study.enqueue_trial({}, user_attrs={'designed': True})\n"
        "row.get('seed'); stored_row = curve['seed']\n"  # not stored mappings: not flagged
    )
    found = _stored_key_literals(ast.parse(code), set(records.TRIAL_KEYS))
    assert sorted(key for _, key in found) == ["confirms", "curve", "designed", "seed", "sweep"]


def test_machine_records_stay_off_the_trial_page_and_read_back_from_either_place() -> None:
    """Curve, rung values and artifact ids are trial system attrs (the dashboard lists user
    attrs only); `trial_attrs` reads them there, and where version 2 wrote them."""
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    curve = [{"epoch": 1, "val_ssim": 0.5, "val_mse": 0.02, "seconds": 1.0}]
    records.write_measurements(trial, {records.CURVE: curve, records.N_PARAMS: 10})
    records.write_rung_value(trial, 1, 0.5, 0.02)
    records.write_rung_value(trial, 2, 0.6, float("nan"))
    records.write_artifacts(trial, {"grid": "abc"})
    study.tell(trial, [0.6, 0.01])
    frozen = study.trials[0]
    assert set(frozen.user_attrs) == {records.N_PARAMS}
    attrs = records.trial_attrs(frozen)
    assert records.read_curve(attrs) == curve
    assert records.read_rung_value(attrs, 1) == (0.5, 0.02)
    assert records.read_pruning_decision(attrs).rung_values.keys() == {1, 2}
    assert records.read_artifact_ids(attrs) == {"grid": "abc"}

    old = optuna.create_study(directions=["maximize", "minimize"])  # as version 2 wrote it
    old.add_trial(
        optuna.trial.create_trial(
            values=[0.6, 0.01], user_attrs={records.CURVE: curve, records.ARTIFACTS: {"grid": "x"}}
        )
    )
    attrs = records.trial_attrs(old.trials[0])
    assert records.read_curve(attrs) == curve
    assert records.read_artifact_ids(attrs) == {"grid": "x"}
