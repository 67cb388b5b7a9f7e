"""The pruning benchmark's replay: its measures and rules, on small recordings built here.

The benchmark decides `run`'s pruning default, so its arithmetic is tested like product code:
hypervolume against Optuna's own, the seconds ratio, the true-front loss, and each rule on
curves whose right answer is known (a slow starter that finishes best).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_pruning as bp  # noqa: E402
from pruning_rules import (  # noqa: E402
    CalibratedExtrapolationRule,
    EnvelopeRule,
    ExtrapolationRule,
    HyperbandRule,
    NoiseRule,
    NoPruning,
    PauseRule,
    RungRule,
    forecast_margins,
    saturating_fit,
)


def test_hypervolume_matches_optuna() -> None:
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(3)
    reference = (0.05, 0.09)  # (worst SSIM, worst MSE)
    for _ in range(20):
        points = np.column_stack([rng.uniform(0.0, 0.9, 9), rng.uniform(0.01, 0.1, 9)])
        inside = points[(points[:, 0] > reference[0]) & (points[:, 1] < reference[1])]
        theirs = (
            compute_hypervolume(
                np.column_stack([-inside[:, 0], inside[:, 1]]),
                np.array([-reference[0], reference[1]]),
            )
            if len(inside)
            else 0.0
        )
        assert bp.hypervolume(points, reference) == pytest.approx(theirs, abs=1e-12)


def trace(seconds: list[float], hv: list[float], lost: bool = False) -> bp.Trace:
    return bp.Trace(seconds, hv, lost, len(seconds), 0)


def test_the_paired_ratio_compares_both_studies_seconds_to_one_target() -> None:
    # The unpruned study reached its final hypervolume (0.5) at 20 s of its 40: the pruned
    # study, there at 13 s, took 13/20 of the seconds, not 13/40.
    baseline = trace([10, 20, 30, 40], [0.1, 0.5, 0.5, 0.5])
    assert bp.paired_outcome(baseline, trace([2, 4, 13, 40], [0.1, 0.3, 0.5, 0.6])).ratio == (
        pytest.approx(13 / 20)
    )
    never = bp.paired_outcome(baseline, trace([5, 10, 41], [0.2, 0.4, 0.45]))
    assert math.isinf(never.ratio)
    assert bp.quantile([0.2, math.inf, 0.4], 0.5) == pytest.approx(0.4)
    assert math.isinf(bp.quantile([0.2, math.inf, math.inf, 0.4], 0.5))
    assert bp.quantile([0.1, 0.2, 0.3, 0.4], 0.5) == pytest.approx(0.25)


def test_anytime_regret_and_first_front_are_read_at_shares_of_the_unpruned_seconds() -> None:
    baseline = trace([10, 20, 30, 40], [0.1, 0.5, 0.5, 0.8])
    baseline.first_front_seconds = 40.0
    pruned = trace([4, 8, 12, 50], [0.2, 0.4, 0.8, 1.0])
    pruned.first_front_seconds = 12.0
    outcome = bp.paired_outcome(baseline, pruned, best_hypervolume=1.0)
    # at 10, 20 and 40 s (25, 50, 100% of 40 s); the pruned trial ending at 50 s is too late
    assert outcome.regret == pytest.approx((1 - 0.4, 1 - 0.8, 1 - 0.8))
    assert outcome.baseline_regret == pytest.approx((1 - 0.1, 1 - 0.5, 1 - 0.8))
    assert outcome.first_front == pytest.approx(12 / 40)
    assert outcome.baseline_first_front == pytest.approx(1.0)


def test_no_pruning_scores_exactly_one_by_construction() -> None:
    """The headline cannot favour doing nothing: the unpruned arm, replayed as a "pruned" one
    on the committed 30-epoch curves, scores 1.0 exactly in every replay, loses nothing and
    has the unpruned study's own regret."""
    rec = bp.load_recording(None, bp.CURVES_30)
    ctx = bp.make_context(rec)
    outcomes = []
    for replay in range(3):
        base = bp.run_replay(rec, bp.ReplayTask("tpe", replay, (2, 3), NoPruning(), 12, None), ctx)
        arm = bp.ReplayTask("tpe", replay, (2, 3), NoPruning(), 12, base.seconds[-1])
        outcomes.append(bp.paired_outcome(base, bp.run_replay(rec, arm, ctx), ctx.best_hypervolume))
    assert [o.ratio for o in outcomes] == [1.0, 1.0, 1.0]
    assert all(o.regret == o.baseline_regret and not o.front_lost for o in outcomes)
    summary = bp.summarise(outcomes)
    assert summary["paired_seconds_ratio_median"] == 1.0
    assert summary["paired_seconds_ratio_ci95"] == [1.0, 1.0]
    assert summary["hypervolume_regret_paired_difference_median"]["100%"] == 0.0


def test_intervals_and_bounds() -> None:
    values = [0.5, 0.6, 0.7, 0.8, math.inf]
    low, high = bp.median_ci95(values)
    assert low <= bp.quantile(values, 0.5) <= high
    assert bp.median_ci95([math.inf] * 4) == [math.inf, math.inf]
    clean = [bp.paired_outcome(trace([1.0], [1.0]), trace([1.0], [1.0]))] * 96
    assert bp.loss_upper_bound(clean) == pytest.approx(1 - 0.05 ** (1 / 96))
    # a replay where the rule raised is reported as a failure, not scored
    broken = bp.Trace([], [], False, 0, 0, error="KeyError: 'No trial with trial_id -1 exists.'")
    summary = bp.summarise([bp.paired_outcome(trace([1.0], [1.0]), broken)])
    assert summary["error"].startswith("KeyError") and "paired_seconds_ratio_median" not in summary


def test_rung_rule_prunes_the_slow_starter_that_envelope_keeps() -> None:
    # Four trials at rung 2: trial 3 is the worst there, though (as trial 0 showed, whose curve
    # gained 0.5 SSIM after the rung) it can still finish first.
    early = {0: (0.2, 0.06), 1: (0.5, 0.03), 2: (0.55, 0.04)}
    finals = {0: (0.7, 0.015), 1: (0.55, 0.028), 2: (0.5, 0.03)}
    newcomer = (0.21, 0.062)  # with trial 0's gains (0.5, 0.045): (0.71, 0.017), on the front

    rung = RungRule(max_epochs=6, grace=2, eta=2)
    envelope = EnvelopeRule(max_epochs=6, grace=2, eta=2, min_complete=3)
    for rule in (rung, envelope):
        for trial, point in early.items():
            assert not rule.stop(trial, 2, point)
            rule.completed(trial, finals[trial])
    assert rung.stop(3, 2, newcomer)
    assert not envelope.stop(3, 2, newcomer)

    # A trial hopeless even with the best gain seen (0.5 SSIM, 0.045 MSE) is stopped.
    assert envelope.stop(4, 2, (-0.4, 0.2))
    # Before min_complete trials have completed through the rung, nothing is stopped.
    fresh = EnvelopeRule(max_epochs=6, grace=2, eta=2, min_complete=3)
    for trial, point in list(early.items())[:2]:
        fresh.stop(trial, 2, point)
        fresh.completed(trial, finals[trial])
    fresh.stop(2, 2, early[2])
    assert not fresh.stop(4, 2, (-0.4, 0.2))


def test_noise_rule_keeps_what_is_within_the_seed_spread() -> None:
    sd = [0.05] * 6
    rule = NoiseRule(max_epochs=6, grace=2, eta=2, margin=1.0, sd_ssim=sd, sd_mse=sd)
    for trial, point in {0: (0.5, 0.2), 1: (0.48, 0.21), 2: (0.1, 0.5)}.items():
        rule.stop(trial, 2, point)
    assert not rule.stop(3, 2, (0.47, 0.22))  # worse, but by less than one SD
    assert rule.stop(4, 2, (0.2, 0.4))  # worse by more than one SD in both


def test_hyperband_brackets_rank_their_own_trials() -> None:
    rule = HyperbandRule(max_epochs=12, grace=1, eta=3)
    assert [b.rungs for b in rule.brackets] == [[1, 3, 9], [3, 9], [9]]
    # trials 0, 3, 6 share bracket 0: only they are ranked against each other at epoch 1
    assert not rule.stop(0, 1, (0.9, 0.01))
    assert not rule.stop(1, 1, (0.95, 0.005))  # bracket 1: no rung at epoch 1
    assert not rule.stop(3, 1, (0.8, 0.02))
    assert rule.stop(6, 1, (0.1, 0.5))
    assert rule.brackets[0].at_rung[1].keys() == {0, 3, 6}


def synthetic_recording() -> bp.Recording:
    """Three configurations, two seeds, four epochs; config 2 starts last and ends best."""
    from search.defaults import SWEEP_BASELINE

    params = [
        {**SWEEP_BASELINE, "latent_dim": 2},
        {**SWEEP_BASELINE, "latent_dim": 8},
        {**SWEEP_BASELINE, "latent_dim": 30},
    ]
    curves_ssim = [[0.4, 0.45, 0.47, 0.48], [0.3, 0.4, 0.5, 0.55], [0.1, 0.3, 0.6, 0.8]]
    curves_mse = [[0.05, 0.045, 0.044, 0.043], [0.06, 0.05, 0.04, 0.035], [0.08, 0.06, 0.03, 0.02]]
    ssim = np.array([[c, c] for c in curves_ssim], dtype=float)
    mse = np.array([[c, c] for c in curves_mse], dtype=float)
    seconds = np.ones_like(ssim)
    fixed = np.full((3, 2), 0.5)
    return bp.Recording(params, [0, 1], ssim, mse, seconds, fixed, {"command": "test"})


def test_replay_charges_recorded_seconds_and_counts_a_lost_front() -> None:
    rec = synthetic_recording()
    ctx = bp.make_context(rec)
    assert ctx.on_true_front.tolist() == [False, False, True]
    # reference: 10% of the range beyond the worst seed means
    assert ctx.reference == pytest.approx((0.48 - 0.032, 0.043 + 0.0023))
    task = bp.ReplayTask("random", 0, (0, 1), NoPruning(), 6, None)
    unpruned = bp.run_replay(rec, task, ctx)
    assert unpruned.trials == 6 and unpruned.pruned == 0 and not unpruned.front_lost
    assert unpruned.seconds[-1] == pytest.approx(6 * 4.5)  # 4 epochs + set-up, every trial

    # Rung at epoch 1 keeping 1 of 2: the slow starter (config 2) is stopped when it comes
    # after a faster one, and that is a lost true-front configuration.
    task = bp.ReplayTask("random", 0, (0, 1), RungRule(4, 1, 2), 6, unpruned.seconds[-1])
    pruned = bp.run_replay(rec, task, ctx)
    assert pruned.pruned > 0
    assert pruned.front_lost


def test_the_snap_finds_the_recorded_configuration_itself() -> None:
    rec = synthetic_recording()
    ctx = bp.make_context(rec)
    space = __import__("search.space", fromlist=["default_space"]).default_space()
    for i, params in enumerate(rec.params):
        distances = ((ctx.encoded - bp.encode(params, space)) ** 2).sum(axis=1)
        assert int(np.argmin(distances)) == i


@pytest.mark.parametrize("path", [bp.CURVES, bp.CURVES_30], ids=["12-epoch", "30-epoch"])
def test_the_committed_curves_are_what_the_benchmark_claims(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing: run python bench/record_curves.py")
    rec = bp.load_recording(None, path)
    assert len(rec.params) >= 32 and len(rec.seeds) >= 4 and rec.max_epochs in (12, 30)
    space = __import__("search.space", fromlist=["default_space"]).default_space()
    for params in rec.params:  # drawn from the default space, every parameter included
        assert set(params) == set(space)
        for name, dist in space.items():
            assert dist._contains(dist.to_internal_repr(params[name]))
    assert np.isfinite(rec.seconds).all() and (rec.seconds[:, :, 0] > 0).all()


def test_run_defaults_are_the_benchmarks_choices() -> None:
    """`run`'s pruning defaults are the rules bench_pruning.py chose (bench/results/pruning.json):
    full from the 30-epoch replay, quick from the 6-epoch one; every horizon's rules carry
    the headline keys."""
    import json

    from search.defaults import PRESETS

    horizons = json.loads((BENCH / "results" / "pruning.json").read_text())["horizons"]
    assert set(horizons) == {"30", "12", "6"}
    for horizon in horizons.values():
        assert horizon["rules"]["none"]["paired_seconds_ratio_median"] == 1.0
        for rule in horizon["rules"].values():
            if "error" in rule:  # a hub package that raised: said, not scored
                continue
            for key in (
                "paired_seconds_ratio_median",
                "paired_seconds_ratio_ci95",
                "true_front_loss_rate",
                "true_front_loss_rate_upper_95",
                "replays",
            ):
                assert key in rule, key
        assert horizon["default"]["replays"] >= 96
    for preset, epochs in (("full", "30"), ("quick", "6")):
        chosen, p = horizons[epochs]["default"], PRESETS[preset]
        assert horizons[epochs]["max_epochs"] == p.epochs
        kind = chosen["rule"].split()[0]
        assert kind in ("rung", "noise", "envelope"), f"{chosen} has no `run` option"
        assert (p.grace_epochs, p.eta) == (chosen["grace"], chosen["eta"]), preset
        assert p.noise_margin == (chosen["margin_sd"] if kind == "noise" else 0.0), preset
        assert p.envelope_min_complete == (chosen["min_complete"] if kind == "envelope" else 0)


def _same_replay(rec: bp.Recording, rule: object, replays: int = 2) -> None:
    ctx = bp.make_context(rec)
    for replay in range(replays):
        base = bp.run_replay(rec, bp.ReplayTask("tpe", replay, (0, 1), NoPruning(), 10, None), ctx)
        task = bp.ReplayTask("tpe", replay, (0, 1), rule, 10, base.seconds[-1])  # type: ignore[arg-type]
        arm = bp.run_replay(rec, task, ctx)
        none = bp.run_replay(
            rec, bp.ReplayTask("tpe", replay, (0, 1), NoPruning(), 10, base.seconds[-1]), ctx
        )
        assert (arm.seconds, arm.hypervolume, arm.log) == (none.seconds, none.hypervolume, none.log)
        assert arm.pruned == 0 and not arm.front_lost


def test_new_rules_with_no_op_settings_reproduce_no_pruning_exactly() -> None:
    """Extrapolation with an infinitely wide interval, and freeze-thaw over a rule that never
    stops (rungs only past the last epoch), replay exactly as no pruning on the 30-epoch
    curves; with real settings the same replay prunes (so the comparison can fail)."""
    rec = bp.load_recording(None, bp.CURVES_30)
    sd_s, sd_m = rec.pooled_sd([0, 1])
    m = rec.max_epochs
    _same_replay(rec, ExtrapolationRule(m, 4, 2, math.inf, 3, sd_s, sd_m))
    zeros = [0.0] * m
    _same_replay(rec, CalibratedExtrapolationRule(m, 4, 2, math.inf, 3, sd_s, sd_m, zeros, zeros))
    # a rung rule whose only rung holds every trial kept (eta larger than any rung's count)
    _same_replay(rec, PauseRule(RungRule(m, 29, 1000)))
    ctx = bp.make_context(rec)
    base = bp.run_replay(rec, bp.ReplayTask("tpe", 0, (0, 1), NoPruning(), 10, None), ctx)
    task = bp.ReplayTask(
        "tpe", 0, (0, 1), ExtrapolationRule(m, 4, 2, 0.5, 3, sd_s, sd_m), 10, base.seconds[-1]
    )
    assert bp.run_replay(rec, task, ctx).pruned > 0


def test_saturating_fit_brackets_the_end_of_a_clean_power_law() -> None:
    t = np.arange(1, 31, dtype=float)
    ssim, mse, sd = 0.8 - 0.5 / t, 0.02 + 0.05 * t**-0.5, [0.01] * 30
    hi = saturating_fit(ssim[:8], sd, 30, True, 1.0)
    lo = saturating_fit(mse[:8], sd, 30, False, 1.0)
    assert ssim[-1] < hi < ssim[-1] + 0.1 and mse[-1] - 0.05 < lo < mse[-1]
    # wider with a larger z, and undetermined below 4 epochs
    assert saturating_fit(ssim[:8], sd, 30, True, 3.0) > hi
    assert math.isnan(saturating_fit(ssim[:3], sd, 30, True, 1.0))
    # measured intervals: a clean power law is forecast (almost) without error; a curve that
    # jumps late is under-forecast by about its jump
    jump = np.where(t > 10, 0.9, 0.2) - 0.1 / t
    margin_s, margin_m = forecast_margins(
        np.array([ssim, ssim, jump]), np.array([mse, mse, mse]), [6], sd, sd, 1.0
    )
    assert margin_s[0] == pytest.approx(0.7, abs=0.05) and abs(margin_m[0]) < 1e-3
    clean, _ = forecast_margins(np.array([ssim, ssim]), np.array([mse, mse]), [6], sd, sd, 1.0)
    assert abs(clean[0]) < 1e-3


def test_extrapolation_stops_only_what_its_best_case_cannot_save() -> None:
    sd = [0.01] * 12
    rule = ExtrapolationRule(12, 4, 2, 2.0, 1, sd, sd)
    rule.completed(0, (0.8, 0.01))
    flat = [(0.2 + 0.001 * e, 0.09) for e in range(4)]  # flat and far behind: stopped
    rising = [(0.1 * (e + 1), 0.09 - 0.015 * e) for e in range(4)]  # could still catch up
    assert [rule.stop(1, e + 1, p) for e, p in enumerate(flat)] == [False] * 3 + [True]
    assert not any(rule.stop(2, e + 1, p) for e, p in enumerate(rising))


def test_pause_resume_thaws_a_trial_its_rung_now_keeps_and_charges_its_epochs() -> None:
    """The synthetic slow starter (config 2, ends best) is stopped at the epoch-1 rung when a
    faster start came first; paused, it is resumed once more trials have reached the rung and
    it is kept there; it then completes and is not a lost front."""
    rec = synthetic_recording()
    ctx = bp.make_context(rec)
    rule = PauseRule(RungRule(4, 1, 2))
    rule.stop(0, 1, (0.4, 0.05))
    assert rule.stop(1, 1, (0.1, 0.08))  # the slow starter, behind the first
    assert rule.resumable({1: 1}) == []
    for t, p in ((2, (0.05, 0.09)), (3, (0.04, 0.095)), (4, (0.03, 0.1))):
        rule.stop(t, 1, p)
    assert rule.resumable({1: 1}) == [1]  # second of five now: within the top 5 // 2
    unpruned = bp.run_replay(rec, bp.ReplayTask("random", 0, (0, 1), NoPruning(), 6, None), ctx)
    task = bp.ReplayTask("random", 0, (0, 1), PauseRule(RungRule(4, 1, 2)), 6, unpruned.seconds[-1])
    paused = bp.run_replay(rec, task, ctx)
    killed = bp.run_replay(
        rec, bp.ReplayTask("random", 0, (0, 1), RungRule(4, 1, 2), 6, unpruned.seconds[-1]), ctx
    )
    assert killed.front_lost and not paused.front_lost
    assert len(paused.log) > paused.trials  # resumptions are logged beside new trials
