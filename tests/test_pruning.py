"""Tests for the multi-objective rung pruner: the pure rule on synthetic vectors, then Optuna."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search import records
from search.pruning import (
    RECORDED_SEED_SD,
    ParetoPrunerConfig,
    RankedTrial,
    beaten_in_best_case,
    completed_through,
    hypervolume_contribution,
    non_dominated_sort,
    prune_reason,
    rank_at_rung,
    rung_decision,
    rung_epochs,
    rung_results,
    seed_spread,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def random_results(rng: np.random.Generator, n: int, first_number: int = 0) -> dict:
    """`n` random (ssim, mse) results in (0.2, 0.8) x (0.01, 0.05), trial numbers shuffled."""
    numbers = rng.permutation(np.arange(first_number, first_number + n)).tolist()
    return {
        number: (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.01, 0.05))) for number in numbers
    }


# --- rung schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grace", "eta", "max_epochs", "expected"),
    [
        (1, 3, 10, [1, 3, 9]),
        (1, 3, 9, [1, 3]),  # the final epoch is not a rung
        (2, 2, 20, [2, 4, 8, 16]),
        (1, 3, 1, []),
        (5, 3, 5, []),
        (1, 4, 100, [1, 4, 16, 64]),
    ],
)
def test_rung_epochs(grace: int, eta: int, max_epochs: int, expected: list[int]) -> None:
    assert rung_epochs(grace, eta, max_epochs) == expected
    assert ParetoPrunerConfig(max_epochs, grace, eta).rungs == expected


@pytest.mark.parametrize(("grace", "eta", "max_epochs"), [(0, 3, 10), (1, 1, 10), (1, 3, 0)])
def test_bad_schedule_is_refused(grace: int, eta: int, max_epochs: int) -> None:
    with pytest.raises(ValueError, match="eta >= 2"):
        ParetoPrunerConfig(max_epochs=max_epochs, grace_epochs=grace, eta=eta)


# --- pure core -----------------------------------------------------------------------------


def test_non_dominated_sort_known_fronts() -> None:
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (2, 2), (6, 6)]
    assert non_dominated_sort(points) == [[0, 1, 2, 5], [3], [4], [6]]


def test_non_dominated_sort_needs_strict_improvement() -> None:
    # (1, 2) is no worse than (1, 3) and strictly better in one objective: it dominates.
    assert non_dominated_sort([(1, 3), (1, 2)]) == [[1], [0]]
    assert non_dominated_sort([]) == []
    with pytest.raises(ValueError, match="finite"):
        non_dominated_sort([(1.0, math.nan), (0.0, 0.0)])


def test_hypervolume_contribution_is_the_area_only_that_point_dominates() -> None:
    # Normalised, minimised points of one front; the reference point is (1.1, 1.1).
    contribution = hypervolume_contribution([(0.0, 1.0), (0.2, 0.6), (0.5, 0.3), (1.0, 0.0)])
    assert contribution == pytest.approx(
        [
            (0.2 - 0.0) * (1.1 - 1.0),
            (0.5 - 0.2) * (1.0 - 0.6),
            (1.0 - 0.5) * (0.6 - 0.3),
            (1.1 - 1.0) * (0.3 - 0.0),
        ]
    )


def test_hypervolume_contribution_equal_points_share_one() -> None:
    points = [(0.0, 1.0), (0.4, 0.5), (0.4, 0.5), (1.0, 0.0)]
    contribution = hypervolume_contribution(points)
    assert contribution[1] == contribution[2] == pytest.approx((1.0 - 0.4) * (1.0 - 0.5))
    assert hypervolume_contribution(points[::-1]) == contribution[::-1]


def test_hypervolume_orders_a_front_on_normalised_objectives() -> None:
    # One front. Normalised per rung (SSIM spans 0.6, MSE 0.04) the points are
    # 0: (0, 1), 1: (1/12, 1/4), 2: (2/3, 1/8), 3: (1, 0), with exclusive areas
    # 0: 1/12 * 0.1, 1: 7/12 * 3/4, 2: 1/3 * 1/8, 3: 0.1 * 1/8. Rescaling must not matter.
    results = {0: (0.9, 0.05), 1: (0.85, 0.02), 2: (0.5, 0.015), 3: (0.3, 0.01)}
    expected = [RankedTrial(1, 1), RankedTrial(2, 1), RankedTrial(3, 1), RankedTrial(0, 1)]
    assert rank_at_rung(results) == expected
    scaled = {n: (ssim, mse * 1000.0) for n, (ssim, mse) in results.items()}
    assert rank_at_rung(scaled) == expected


def test_issue_example_the_newcomer_that_halves_the_best_mse_survives() -> None:
    # Issue 8: trial 3 (best MSE) and trial 0 (best SSIM) share the first front. The old rule
    # kept one of them by trial number and pruned trial 3.
    results = {0: (0.90, 0.020), 1: (0.60, 0.040), 2: (0.55, 0.045), 3: (0.85, 0.010)}
    decisions = {n: rung_decision(n, results, eta=3) for n in results}
    assert not decisions[3].prune and not decisions[0].prune
    assert decisions[1].prune and decisions[2].prune
    # Renumbering the same points (every bijection onto other numbers) prunes the same points.
    pruned_points = {results[n] for n, d in decisions.items() if d.prune}
    for numbers in itertools.permutations([10, 4, 7, 1]):
        renumbered = dict(zip(numbers, results.values(), strict=True))
        again = {renumbered[n] for n in renumbered if rung_decision(n, renumbered, eta=3).prune}
        assert again == pruned_points


def test_the_first_front_is_kept_whole_even_beyond_the_quota() -> None:
    # Five points on one front and a dominated one, eta 3: the quota is 2, yet nothing on the
    # first front is pruned; the dominated point is.
    front = {n: (0.5 + 0.1 * n, 0.010 + 0.005 * n) for n in range(5)}
    results = front | {9: (0.4, 0.040)}
    assert [n for n in results if rung_decision(n, results, eta=3).prune] == [9]


def test_renumbering_never_changes_which_points_are_pruned() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        results = random_results(rng, 10)
        results = {n: (round(s, 1), round(m, 2)) for n, (s, m) in results.items()}
        pruned = sorted(results[n] for n in results if rung_decision(n, results, eta=3).prune)
        numbers = rng.permutation(np.arange(100, 110)).tolist()
        renumbered = dict(zip(numbers, results.values(), strict=True))
        again = sorted(
            renumbered[n] for n in renumbered if rung_decision(n, renumbered, eta=3).prune
        )
        assert again == pruned


def test_nan_and_inf_rank_last_by_trial_number() -> None:
    results = {0: (math.nan, 0.01), 1: (0.1, 0.9), 2: (0.9, math.inf), 3: (0.5, 0.5)}
    ranked = rank_at_rung(results)
    assert [r.number for r in ranked] == [3, 1, 0, 2]
    assert ranked[-1].front == ranked[-2].front == 3
    assert rung_decision(0, results, eta=2).prune


def test_equal_vectors_share_one_fate() -> None:
    results = {7: (0.9, 0.01), 4: (0.9, 0.01), 5: (0.2, 0.05)}
    # Listed by trial number, but judged alike: neither of two equal results is pruned.
    assert rank_at_rung(results) == [RankedTrial(4, 1), RankedTrial(7, 1), RankedTrial(5, 2)]
    assert not rung_decision(4, results, eta=3).prune
    assert not rung_decision(7, results, eta=3).prune
    assert rung_decision(5, results, eta=3).prune
    # Equal results behind the quota on a later front: kept or pruned together.
    results = {0: (0.9, 0.01), 1: (0.5, 0.03), 2: (0.5, 0.03), 3: (0.4, 0.04), 4: (0.3, 0.05)}
    assert [n for n in results if rung_decision(n, results, eta=2).prune] == [3, 4]


# --- invariants ----------------------------------------------------------------------------


@pytest.mark.parametrize("eta", [2, 3, 4])
def test_invariant_1_a_trial_dominating_every_point_is_never_pruned(eta: int) -> None:
    rng = np.random.default_rng(1)
    for n_others in range(0, 15):
        results = random_results(rng, n_others, first_number=0)
        best_ssim = max((s for s, _ in results.values()), default=0.5)
        best_mse = min((m for _, m in results.values()), default=0.03)
        # The dominating trial gets the largest number so no tie-break by number can help it.
        winner = n_others + 100
        results[winner] = (best_ssim + 0.01, best_mse - 0.001)
        decision = rung_decision(winner, results, eta)
        assert not decision.prune
        assert (decision.rank, decision.front) == (1, 1)


@pytest.mark.parametrize("eta", [2, 3, 4])
def test_invariant_1_holds_with_the_winner_at_an_extreme_of_a_crowded_set(eta: int) -> None:
    # Syne Tune's epsilon-net ordering can pick a spread-out point before the dominating one;
    # here the others are spread along a trade-off and the winner barely beats every one.
    others = {n: (0.5 + 0.04 * n, 0.010 + 0.004 * n) for n in range(10)}
    winner = {99: (0.5 + 0.04 * 9 + 1e-6, 0.010 - 1e-6)}
    assert not rung_decision(99, others | winner, eta).prune


@pytest.mark.parametrize("eta", [2, 3, 5])
def test_invariant_2_nothing_is_pruned_before_eta_results(eta: int) -> None:
    rng = np.random.default_rng(2)
    for n in range(1, eta):
        results = random_results(rng, n)
        results[50] = (math.nan, math.nan)  # even the worst possible result survives
        results.pop(next(iter(results)))  # keep n results in total
        for number in results:
            assert not rung_decision(number, results, eta).prune


@pytest.mark.parametrize("eta", [2, 3, 4])
def test_invariant_3_a_trial_dominated_by_all_is_pruned_once_enough_results(eta: int) -> None:
    rng = np.random.default_rng(3)
    for n_others in range(eta - 1, 15):
        results = random_results(rng, n_others, first_number=1)
        loser = 0  # smallest number, so no tie-break by number can save it
        results[loser] = (0.2 - 0.01, 0.05 + 0.001)
        decision = rung_decision(loser, results, eta)
        assert decision.prune
        assert decision.rank == decision.n == n_others + 1


def test_invariant_4_order_of_arrival_does_not_matter() -> None:
    # Ties, a duplicate, a NaN and two fronts: every permutation must give the same verdicts.
    results = {
        3: (0.8, 0.02),
        0: (0.6, 0.01),
        5: (0.6, 0.01),
        1: (0.7, 0.03),
        4: (math.nan, 0.01),
        2: (0.9, 0.04),
    }
    reference = rank_at_rung(results)
    decisions = {n: rung_decision(n, results, eta=2) for n in results}
    assert [n for n, d in decisions.items() if d.prune] == [1, 4]
    for order in itertools.permutations(results):
        permuted = {n: results[n] for n in order}
        assert rank_at_rung(permuted) == reference
        # The trial that arrived last is the one judged now: its verdict must not move.
        assert rung_decision(order[-1], permuted, eta=2) == decisions[order[-1]]


def test_invariant_4_on_random_sets() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        results = random_results(rng, 9)
        # Quantise so equal values and equal vectors happen.
        results = {n: (round(s, 1), round(m, 2)) for n, (s, m) in results.items()}
        reference = rank_at_rung(results)
        for _ in range(10):
            order = rng.permutation(list(results)).tolist()
            assert rank_at_rung({n: results[n] for n in order}) == reference


# --- Optuna glue ---------------------------------------------------------------------------


def fake_curve(capacity: float, balance: float, epoch: int) -> tuple[float, float]:
    """A learning curve without training: `capacity` near 1 and `balance` near 1 is best."""
    quality = 1.0 - (1.0 - capacity) ** 2
    progress = 1.0 - 0.5**epoch
    ssim = quality * (0.8 + 0.2 * balance) * progress
    mse = (1.0 - quality) * (0.05 + 0.02 * (1.0 - balance)) + 0.01 * (1.0 - progress)
    return ssim, mse


def run_trials(study: optuna.Study, n_trials: int, config: ParetoPrunerConfig) -> None:
    for _ in range(n_trials):
        trial = study.ask()
        capacity = trial.suggest_float("capacity", 0.0, 1.0)
        balance = trial.suggest_float("balance", 0.0, 1.0)
        for epoch in range(1, config.max_epochs + 1):
            ssim, mse = fake_curve(capacity, balance, epoch)
            reason = prune_reason(study, trial, epoch, ssim, mse, config=config)
            if reason is not None:
                trial.set_user_attr("pruned_reason", reason)
                trial.set_user_attr("pruned_at_epoch", epoch)
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, [ssim, mse])


@pytest.mark.parametrize(
    "sampler",
    [
        optuna.samplers.TPESampler(multivariate=True, seed=0, n_startup_trials=5),
        optuna.samplers.NSGAIISampler(seed=0, population_size=6),
        optuna.samplers.RandomSampler(seed=0),
    ],
    ids=["tpe-multivariate", "nsga2", "random"],
)
def test_study_prunes_and_keeps_the_best_trial(sampler: optuna.samplers.BaseSampler) -> None:
    config = ParetoPrunerConfig(max_epochs=9, grace_epochs=1, eta=3)  # rungs 1 and 3
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run_trials(study, 12, config)
    # Enqueued mid-study: a trial that dominates every other at every epoch, then a hopeless one.
    study.enqueue_trial({"capacity": 1.0, "balance": 1.0})
    study.enqueue_trial({"capacity": 0.0, "balance": 0.0})
    run_trials(study, 14, config)

    trials = study.get_trials()
    assert len(trials) == 26
    best, hopeless = trials[12], trials[13]
    assert best.state == TrialState.COMPLETE
    assert best.number in {t.number for t in study.best_trials}
    assert hopeless.state == TrialState.PRUNED
    assert hopeless.user_attrs["pruned_at_epoch"] == 1
    assert hopeless.user_attrs["pruned_reason"].startswith("rank 14 of 14 at rung 1 epochs")

    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(pruned) >= 5
    for trial in pruned:
        assert trial.values is None
        rung = str(trial.user_attrs["pruned_at_epoch"])
        assert set(records.trial_attrs(trial)["rung_values"]) == {
            r for r in ("1", "3") if int(r) <= int(rung)
        }
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            assert set(records.trial_attrs(trial)["rung_values"]) == {"1", "3"}
            expected = fake_curve(trial.params["capacity"], trial.params["balance"], 3)
            assert records.trial_attrs(trial)["rung_values"]["3"] == pytest.approx(list(expected))


def test_non_rung_epochs_leave_storage_alone_and_rungs_accumulate() -> None:
    config = ParetoPrunerConfig(max_epochs=10, grace_epochs=1, eta=3)
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    assert prune_reason(study, trial, 2, 0.5, 0.02, config=config) is None
    assert "rung_values" not in records.trial_attrs(study.get_trials()[0])
    assert prune_reason(study, trial, 1, 0.4, 0.03, config=config) is None
    assert prune_reason(study, trial, 3, 0.6, math.nan, config=config) is None
    stored = records.trial_attrs(study.get_trials()[0])["rung_values"]
    assert stored == {"1": [0.4, 0.03], "3": [0.6, None]}  # NaN stored as JSON null


def test_decisions_read_other_processes_trials_in_any_state(tmp_path: Path) -> None:
    config = ParetoPrunerConfig(max_epochs=10, grace_epochs=1, eta=3)
    path = str(tmp_path / "journal.log")

    def worker_study() -> optuna.Study:
        # A fresh Study object over the same journal file, as another worker process would open.
        storage = JournalStorage(JournalFileBackend(path))
        return optuna.load_study(study_name="shared", storage=storage)

    optuna.create_study(
        study_name="shared",
        storage=JournalStorage(JournalFileBackend(path)),
        directions=["maximize", "minimize"],
    )
    other = worker_study()
    for state, ssim, mse in [
        (TrialState.COMPLETE, 0.9, 0.01),
        (TrialState.PRUNED, 0.8, 0.02),
        (TrialState.FAIL, 0.85, 0.015),
    ]:
        other.add_trial(
            optuna.trial.create_trial(
                state=state,
                values=[ssim, mse] if state == TrialState.COMPLETE else None,
                user_attrs={"rung_values": {"1": [ssim, mse]}},
            )
        )

    study = worker_study()
    trial = study.ask()
    reason = prune_reason(study, trial, 1, 0.5, 0.05, config=config)
    assert reason == "rank 4 of 4 at rung 1 epochs (front 4); kept top 1"
    assert rung_results(worker_study().get_trials(), 1)[trial.number] == (0.5, 0.05)


def test_a_retried_trial_is_counted_once() -> None:
    # RetryFailedTrialCallback copies user attrs into the retry; the failed original must not
    # count a second time, or one configuration would fill two places at the rung.
    study = optuna.create_study(directions=["maximize", "minimize"])
    attrs = {"rung_values": {"1": [0.7, 0.02]}}
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs))
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            user_attrs=attrs,
            system_attrs={"failed_trial": 0, "retry_history": [0]},
        )
    )
    assert rung_results(study.get_trials(), 1) == {1: (0.7, 0.02)}


# --- noise margin ------------------------------------------------------------------------


def ask_configuration(study: optuna.Study, k: int) -> optuna.Trial:
    """A trial of configuration `k` (equal k: runs of one configuration under other seeds)."""
    study.enqueue_trial({"k": k})
    return study.ask({"k": optuna.distributions.IntDistribution(1, 64)})


def test_noise_margin_keeps_a_trial_within_the_seed_spread() -> None:
    spread_at_2 = (RECORDED_SEED_SD["ssim"][1], RECORDED_SEED_SD["mse"][1])
    study = optuna.create_study(directions=["maximize", "minimize"])
    plain = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2)
    careful = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2, noise_margin=1.0)
    for k, (ssim, mse) in enumerate([(0.50, 0.040), (0.45, 0.050), (0.40, 0.060)], start=1):
        trial = ask_configuration(study, k)
        prune_reason(study, trial, 2, ssim, mse, config=plain, judge=False)
        study.tell(trial, state=TrialState.PRUNED)
    # Worse than trial 0 in both, but by less than one recorded SD in SSIM: the ranking alone
    # prunes it, the margin keeps it.
    close = (0.50 - spread_at_2[0] / 2, 0.040 + 2 * spread_at_2[1])
    assert prune_reason(study, ask_configuration(study, 10), 2, *close, config=plain) is not None
    assert prune_reason(study, ask_configuration(study, 11), 2, *close, config=careful) is None
    # Worse by more than one SD in both: stopped, and the reason names who beat it and the SD.
    far = (0.50 - 2 * spread_at_2[0], 0.040 + 2 * spread_at_2[1])
    reason = prune_reason(study, ask_configuration(study, 12), 2, *far, config=careful)
    assert reason is not None
    assert "trial 0 beat it by more than 1 seed SD" in reason
    assert "recorded by the pruning benchmark" in reason


def test_seed_spread_is_the_studys_own_once_repeats_give_enough_dof() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    config = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2)

    def record(k: int, d: int) -> None:  # a run of configuration k, d = -1 or +1 around it
        trial = ask_configuration(study, k)
        ssim, mse = 0.3 + k / 100 + 0.01 * d, 0.05 - 0.001 * d
        prune_reason(study, trial, 2, ssim, mse, config=config, judge=False)
        study.tell(trial, state=TrialState.PRUNED)

    for k in (2, 8, 16):
        record(k, -1)
        record(k, +1)
    spread = seed_spread(study.get_trials(deepcopy=False), 2)
    # 3 configurations x 2 runs = 3 degrees of freedom: too rough, the recorded spread stands in
    assert spread.source == "recorded by the pruning benchmark"
    assert spread.ssim == RECORDED_SEED_SD["ssim"][1]
    record(32, -1)
    record(32, +1)
    spread = seed_spread(study.get_trials(deepcopy=False), 2)
    assert spread.source == "this study's, 4 degrees of freedom"
    # every pair is its mean +- (0.01, 0.001): 2 squared deviations per pair, pooled over 4 dof
    assert spread.ssim == pytest.approx(math.sqrt(4 * 2 * 0.01**2 / 4))
    assert spread.mse == pytest.approx(math.sqrt(4 * 2 * 0.001**2 / 4))
    # beyond the recorded epochs the last recorded value stands in
    assert seed_spread([], 40).ssim == RECORDED_SEED_SD["ssim"][-1]


def test_recorded_seed_spread_is_what_the_recorded_curves_give() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_pruning

    recording = bench_pruning.load_recording()
    tuning = list(range(len(recording.seeds) // 2))
    sd_ssim, sd_mse = recording.pooled_sd(tuning)
    assert RECORDED_SEED_SD["ssim"] == pytest.approx(sd_ssim.tolist(), rel=5e-3)
    assert RECORDED_SEED_SD["mse"] == pytest.approx(sd_mse.tolist(), rel=5e-3)


def test_envelope_keeps_a_slow_starter_that_completed_trials_say_can_still_win() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    plain = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2)
    guarded = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2, envelope_min_complete=3)
    # Three completed trials; trial 0 started worst and gained 0.5 SSIM, 0.045 MSE after rung 2.
    history = [
        ((0.2, 0.06), (0.7, 0.015)),
        ((0.5, 0.03), (0.55, 0.028)),
        ((0.55, 0.04), (0.5, 0.03)),
    ]
    for k, (rung, final) in enumerate(history, start=1):
        trial = ask_configuration(study, k)
        prune_reason(study, trial, 2, *rung, config=plain, judge=False)
        study.tell(trial, list(final))
    assert completed_through(study.get_trials(deepcopy=False), 2) == {
        n: (rung, final) for n, (rung, final) in enumerate(history)
    }
    newcomer = (0.21, 0.062)  # best case (0.71, 0.017): nobody's final dominates it
    assert prune_reason(study, ask_configuration(study, 10), 2, *newcomer, config=plain)
    assert prune_reason(study, ask_configuration(study, 11), 2, *newcomer, config=guarded) is None
    hopeless = (-0.4, 0.2)  # best case (0.1, 0.155): beaten by every completed trial
    reason = prune_reason(study, ask_configuration(study, 12), 2, *hopeless, config=guarded)
    assert reason is not None and "stays behind trial 0" in reason
    # fewer completed trials than asked for: nothing is stopped yet
    strict = ParetoPrunerConfig(max_epochs=6, grace_epochs=2, eta=2, envelope_min_complete=4)
    assert prune_reason(study, ask_configuration(study, 13), 2, *hopeless, config=strict) is None
    assert beaten_in_best_case((math.nan, 0.1), {0: ((0.1, 0.1), (0.2, 0.05))}, 1) == [0]
