"""The report's verdicts rest on configurations and measured noise.

Each study here is written to a real SQLite storage with exactly the numbers the test needs
(tests/report_fixtures.py, `build_runs_study`), then read by the real report code; the
assertions are on the context (plain data), and one test renders the HTML.
"""

from __future__ import annotations

import math

import pytest

from search.configurations import Run, group_runs, losses, pooled_noise, t_quantile
from search.pareto import hypervolume_2d
from search.report import report_context, write_report
from search.report.sections import DataProvenance
from tests.report_fixtures import FixtureRun, build_runs_study
from tests.test_report import ParsedReport

NAME = "verdicts"


def _lucky_draw_runs() -> list[FixtureRun]:
    """k = 8 is first measured by a lucky seed (trial 0); its confirmation runs show a mean
    that k = 4 (three seeds) beats in both objectives."""
    return [
        FixtureRun({"latent_dim": 8}, 0.900, 0.0411, train_mse=0.037, test=(0.897, 0.0420)),
        FixtureRun({"latent_dim": 4}, 0.870, 0.0450, train_mse=0.041, test=(0.866, 0.0455)),
        FixtureRun({"latent_dim": 2}, 0.800, 0.0600, train_mse=0.056),
        FixtureRun({"latent_dim": 8}, 0.840, 0.0490, train_mse=0.045, confirms=0),
        FixtureRun({"latent_dim": 8}, 0.838, 0.0500, train_mse=0.046, confirms=0),
        FixtureRun({"latent_dim": 4}, 0.872, 0.0448, train_mse=0.041, confirms=1),
        FixtureRun({"latent_dim": 4}, 0.868, 0.0452, train_mse=0.041, confirms=1),
    ]


def test_a_lucky_single_draw_is_not_the_recommendation(tmp_path):
    study = build_runs_study(tmp_path, _lucky_draw_runs(), name=NAME)
    context = report_context(study)
    recommendation = context.summary.recommendation
    # trial 0 alone dominates every other trial; its configuration's mean does not
    assert recommendation.params["latent_dim"] == 4
    assert recommendation.number == 1 and recommendation.numbers == (1, 5, 6)
    assert recommendation.values["MSE"] == pytest.approx((0.0450 + 0.0448 + 0.0452) / 3)
    assert recommendation.sd["MSE"] == pytest.approx(0.0002)
    assert recommendation.first_values == {"SSIM": 0.870, "MSE": 0.0450}
    assert "means over 3 runs under different seeds" in recommendation.evidence
    assert recommendation.confirm_command is None
    # the front is on means: the k = 8 configuration (mean MSE 0.0467) is dominated
    front = context.pareto.front
    assert [(row.number, row.n) for row in front] == [(1, 3)]
    assert front[0].values[1] == pytest.approx(recommendation.values["MSE"])
    assert context.pareto.n == [3, 3, 1] and context.pareto.numbers == [0, 1, 2]


def test_the_summary_shows_the_representative_run_beside_the_confirmed_mean(tmp_path):
    study = build_runs_study(
        tmp_path / "s",
        _lucky_draw_runs(),
        name=NAME,
        counts={"train": 4000, "validation": 500, "test": 300, "unlabeled": 200},
    )
    page = write_report(study, tmp_path / "out", formats=("html",))["html"]
    text = ParsedReport(page.read_text(encoding="utf-8")).visible_text()
    # trial 1 is also the run nearest the mean here (tests/test_report_reading.py: one that
    # is not)
    assert "trial 1 alone (the run nearest the mean) 0.8700 0.04500" in text
    assert "mean over 3 seeds (SD) 0.8700 (0.0020) 0.04500 (0.00020)" in text
    assert "Its numbers are means over 3 runs under different seeds" in text
    assert "(test metrics from 1 of its 3 runs)" in text  # only trial 1 recorded test metrics
    assert "300 held-out test images" in text and "the other 200 images" in text
    assert "test split was never read" not in text


def _tied_front(first: str) -> list[FixtureRun]:
    # scaled over all three configurations both front points lie at distance 0.5 from the
    # ideal point: an exact tie (dyadic numbers, no rounding)
    p = FixtureRun({"latent_dim": 8}, 0.75, 0.50)
    q = FixtureRun({"latent_dim": 16}, 0.50, 0.25)
    r = FixtureRun({"latent_dim": 2}, 0.25, 0.75)
    return [p, q, r] if first == "p" else [q, p, r]


def test_a_two_point_front_has_no_knee_and_trial_numbers_do_not_break_the_tie(tmp_path):
    recommendations = []
    for first in ("p", "q"):
        context = report_context(build_runs_study(tmp_path / first, _tied_front(first)))
        assert len(context.pareto.front) == 2
        recommendations.append(context.summary.recommendation)
    # the same configuration, whichever trial came first
    assert recommendations[0].params == recommendations[1].params
    for recommendation in recommendations:
        assert "two configurations on the front, so there is no knee" in recommendation.method
        assert not recommendation.has_knee


def test_a_single_run_recommendation_says_so_and_names_the_command(tmp_path):
    context = report_context(build_runs_study(tmp_path, _tied_front("p")[:1], name=NAME))
    recommendation = context.summary.recommendation
    assert "the only configuration on the Pareto front" in recommendation.method
    assert recommendation.n == 1
    assert "single run" in recommendation.evidence
    assert (
        recommendation.confirm_command
        == f"python -m search run --study {NAME} --trials 1 --confirm 2"
    )
    assert recommendation.confirm_command in recommendation.evidence


def _sweep(values: dict[int, list[tuple[float, float]]]) -> list[FixtureRun]:
    """Sweep runs of latent_dim: {k: [(validation MSE, train MSE) per seed]}."""
    return [
        FixtureRun(
            {"latent_dim": k},
            0.95 - 4 * val,
            val,
            train_mse=train,
            sweep={"name": "latent_dim", "value": k, "repeat": i},
        )
        for k, seeds in values.items()
        for i, (val, train) in enumerate(seeds)
    ]


def test_a_single_seed_sweep_draws_no_verdict_and_names_the_command(tmp_path):
    # the last value is 0.0004 above the smallest while the gap widens by 0.0004: with a
    # threshold of 0 this used to read as "the signature of overfitting"
    runs = _sweep(
        {
            2: [(0.0500, 0.0450)],
            4: [(0.0480, 0.0430)],
            8: [(0.0470, 0.0420)],
            16: [(0.0468, 0.0415)],
            32: [(0.0472, 0.0415)],
        }
    )
    context = report_context(build_runs_study(tmp_path, runs, name=NAME))
    bias_variance = context.bias_variance
    assert bias_variance.spread is None
    axis = next(a for a in bias_variance.axes if a.name == "latent_dim")
    assert axis.statistic == "mean" and [g.n for g in axis.groups] == [1, 1, 1, 1, 1]
    text = " ".join(axis.sentences)
    for claim in ("overfit", "lowest", "rose", "fell", "best"):
        assert claim not in text
    command = f"python -m search run --study {NAME} --sweep latent_dim=2,4,8,16,32 --repeats 3"
    assert axis.evidence_command == command and command in text
    assert "--confirm 2" in bias_variance.spread_sentence


def test_sweep_values_without_a_complete_run_are_named(tmp_path):
    # a study from a version that pruned designed trials: k = 8 and 16 never finished
    runs = _sweep({2: [(0.0600, 0.0560)], 4: [(0.0500, 0.0460)]})
    runs += [
        FixtureRun(
            {"latent_dim": k}, 0, 0, state="PRUNED", sweep={"name": "latent_dim", "value": k}
        )
        for k in (8, 16)
    ]
    context = report_context(build_runs_study(tmp_path, runs, name=NAME))
    axis = next(a for a in context.bias_variance.axes if a.name == "latent_dim")
    assert (
        "The sweep also planned latent_dim = 8, 16, but no run of them completed (pruned)"
        in " ".join(axis.sentences)
    )


def test_a_repeated_sweep_says_which_values_cannot_be_told_apart(tmp_path):
    # the means seen in the issue (k >= 4 within noise), three seeds each with SD 0.003
    means = {2: 0.0567, 4: 0.0483, 6: 0.0465, 8: 0.0448, 10: 0.0468}
    runs = _sweep(
        {k: [(m + d, m - 0.004 + d) for d in (-0.003, 0.0, 0.003)] for k, m in means.items()}
    )
    context = report_context(build_runs_study(tmp_path, runs, name=NAME))
    axis = next(a for a in context.bias_variance.axes if a.name == "latent_dim")
    text = " ".join(axis.sentences)
    assert "latent dimension k 4, 6, 8 and 10 cannot be told apart" in text
    assert "overfitting beyond" not in text
    spread = context.bias_variance.spread
    assert spread is not None and spread.dof == 10 and spread.n_configs == 5
    assert spread.val_sd == pytest.approx(0.003)
    threshold = t_quantile(10) * 0.003 * math.sqrt(2 / 3)
    assert spread.val_threshold(3, 3) == pytest.approx(threshold)
    # 0.0567 - 0.0448 is beyond the threshold: k = 2 is not among the tied values
    assert 0.0567 - 0.0448 > threshold > 0.0483 - 0.0448
    # and the recommendation says so too: its edge over k = 4, 6 and 10 is within the noise
    rec = context.summary.recommendation
    assert rec is not None and rec.params["latent_dim"] == 8
    # said once, on page one, with the difference and threshold in both objectives
    assert "cannot be told apart from 3 other configurations" in rec.ties_text
    for k in (4, 6, 10):
        assert f"(latent_dim {k}; n = " in rec.ties_text
    assert "(latent_dim 2;" not in rec.ties_text
    assert [tie.differs for tie in rec.ties] == [{"latent_dim": k} for k in (4, 6, 10)]


def test_noise_is_pooled_over_every_repeated_configuration_not_only_sweeps(tmp_path):
    context = report_context(build_runs_study(tmp_path, _lucky_draw_runs(), name=NAME))
    spread = context.bias_variance.spread
    assert spread is not None
    assert (spread.n_configs, spread.n_runs, spread.dof) == (2, 6, 4)
    assert spread.which == "2 confirmed configurations"
    gaps = {8: [0.0411 - 0.037, 0.0490 - 0.045, 0.0500 - 0.046], 4: [0.0040, 0.0038, 0.0042]}
    squares = sum(sum((g - sum(v) / 3) ** 2 for g in v) for v in gaps.values())
    assert spread.gap_sd == pytest.approx(math.sqrt(squares / 4))
    assert "pooled over all 2 configurations run under more than one seed" in (
        context.bias_variance.spread_sentence
    )


def test_effect_charts_and_hypervolume_use_configuration_means(tmp_path):
    context = report_context(build_runs_study(tmp_path, _lucky_draw_runs(), name=NAME))
    effect = next(e for e in context.effects.effects if e.name == "latent_dim")
    assert effect.numbers == [0, 1, 2] and effect.n == [3, 3, 1]
    assert effect.values[0][1] == pytest.approx((0.0411 + 0.0490 + 0.0500) / 3)
    best_k8 = next(g for g in effect.groups if g.label == "8")
    assert best_k8.n == 1 and best_k8.n_runs == 3
    assert best_k8.best[1] == pytest.approx(effect.values[0][1])  # not the lucky 0.0411

    hypervolume = context.diagnostics.hypervolume
    runs = [Run(i, r.params, (r.ssim, r.mse)) for i, r in enumerate(_lucky_draw_runs())]
    final = losses(group_runs(runs), (True, False))
    span = final.max(axis=0) - final.min(axis=0)
    reference = final.max(axis=0) + 0.1 * span  # from the data: worst mean + 10 % of range
    assert hypervolume.reference["MSE"] == pytest.approx(reference[1])
    assert hypervolume.reference["SSIM"] == pytest.approx(-reference[0])
    assert hypervolume.values[-1] == pytest.approx(hypervolume_2d(final, reference))
    # after trial 3, k = 8's mean is no longer its lucky draw: the hypervolume falls
    after_2 = hypervolume.values[2]
    assert hypervolume.values[3] < after_2
    assert after_2 == pytest.approx(
        hypervolume_2d(losses(group_runs(runs[:3]), (True, False)), reference)
    )


def test_pruning_counts_sampled_trials_and_says_how_many_were_designed(tmp_path):
    runs = [
        *_tied_front("p"),
        FixtureRun({"latent_dim": 4}, 0, 0, state="PRUNED"),  # sampled
        FixtureRun(
            {"latent_dim": 32}, 0, 0, state="PRUNED", sweep={"name": "latent_dim", "value": 32}
        ),
        FixtureRun({"latent_dim": 8}, 0.74, 0.51, confirms=0),
    ]
    context = report_context(build_runs_study(tmp_path, runs, name=NAME))
    pruning = context.diagnostics.pruning
    assert pruning.n_pruned == 1
    assert (pruning.n_sampled, pruning.n_designed) == (4, 2)
    assert pruning.n_designed_pruned == 1
    assert pruning.epochs_saved == 8 == context.summary.budget.epochs_saved
    assert "1 of the 4 sampled trials was pruned" in pruning.sentence
    assert "2 trials were designed" in pruning.designed_sentence
    assert "Yet 1 of them was pruned" in pruning.designed_sentence
    summary = " ".join(context.summary.sentences)
    assert "2 of the 6 trials were designed" in summary
    assert "yet 1 of them was pruned by the version that ran this study" in summary


def test_held_out_counts_are_stated_and_never_contradicted():
    from search.report.summary import held_out_sentence

    def data(counts: dict[str, int]) -> DataProvenance:
        return DataProvenance("keras", None, None, counts, False, None)

    plain = held_out_sentence(data({"train": 60000, "validation": 5000, "test": 10000}))
    assert plain == "Test metrics are on 10,000 held-out test images that no model trained on."
    split = held_out_sentence(data({"train": 60000, "test": 5000, "unlabeled": 5000}))
    assert "5,000 held-out test images" in split and "other 5,000 images of the test split" in split
    # a study from before the split: the test images were trained on, unlabeled
    legacy = held_out_sentence(data({"train": 60000, "test": 10000, "extra_unlabeled": 10000}))
    assert "not on held-out images" in legacy
    assert held_out_sentence(None) is None


def test_pooled_noise_of_the_report_is_the_configurations_module_s(tmp_path):
    # one rule everywhere: the report's pooled SD of validation MSE is search.configurations'
    context = report_context(build_runs_study(tmp_path, _lucky_draw_runs(), name=NAME))
    runs = [Run(i, r.params, (r.ssim, r.mse)) for i, r in enumerate(_lucky_draw_runs())]
    noise = pooled_noise(group_runs(runs))
    assert noise is not None
    assert context.bias_variance.spread.val_sd == pytest.approx(noise.sd[1])
