"""Configurations: grouping by parameters, pooled noise, front on means, the knee rule."""

from __future__ import annotations

import math

import pytest

from search.configurations import (
    Run,
    choose,
    configuration_key,
    confirmation_plan,
    group_runs,
    indistinguishable,
    pareto_front,
    pooled_noise,
    t_quantile,
)

MAXIMIZE = (True, False)  # SSIM up, MSE down


def test_equal_parameters_are_one_configuration_whatever_their_storage_form() -> None:
    assert configuration_key({"k": 4, "beta": 0.5}) == configuration_key({"beta": 0.5, "k": 4.0})
    assert configuration_key({"beta": 0.1 + 0.2}) == configuration_key({"beta": 0.3})
    assert configuration_key({"loss": "bce"}) != configuration_key({"loss": "mse"})


def test_group_runs_means_sd_and_first_run() -> None:
    runs = [
        Run(5, {"k": 8}, (0.70, 0.050)),
        Run(2, {"k": 8}, (0.80, 0.040)),
        Run(3, {"k": 2}, (0.60, 0.060)),
    ]
    k8, k2 = group_runs(runs)
    assert k8.numbers == (2, 5) and k8.first == 2 and k8.n == 2
    assert k8.mean == pytest.approx((0.75, 0.045))
    assert k8.sd == pytest.approx((math.sqrt(0.005), math.sqrt(0.00005)))
    assert k2.sd is None and k2.mean == pytest.approx((0.60, 0.060))


def test_pooled_noise_weights_by_degrees_of_freedom() -> None:
    runs = [
        Run(0, {"k": 1}, (0.5, 0.10)),
        Run(1, {"k": 1}, (0.5, 0.12)),  # SS 0.0002, dof 1
        Run(2, {"k": 2}, (0.5, 0.20)),
        Run(3, {"k": 2}, (0.5, 0.22)),
        Run(4, {"k": 2}, (0.5, 0.24)),  # SS 0.0008, dof 2
        Run(5, {"k": 3}, (0.9, 0.01)),  # single run: no information on noise
    ]
    noise = pooled_noise(group_runs(runs))
    assert noise is not None
    assert (noise.dof, noise.n_configs, noise.n_runs) == (3, 2, 5)
    assert noise.sd[1] == pytest.approx(math.sqrt(0.001 / 3))
    assert noise.sd[0] == 0.0
    # the threshold is t(dof) standard errors of the difference of two means
    assert noise.threshold(3, 3, 1) == pytest.approx(t_quantile(3) * noise.sd[1] * math.sqrt(2 / 3))
    assert pooled_noise(group_runs(runs[-1:])) is None


def test_front_is_computed_on_means_not_on_lucky_draws() -> None:
    # one lucky seed of k=8 beats k=4 on its own; its mean does not
    runs = [
        Run(0, {"k": 4}, (0.80, 0.045)),
        Run(1, {"k": 4}, (0.80, 0.047)),
        Run(2, {"k": 8}, (0.81, 0.041)),
        Run(3, {"k": 8}, (0.78, 0.055)),
    ]
    front = pareto_front(group_runs(runs), MAXIMIZE)
    assert [c.params["k"] for c in front] == [4]


def test_two_point_front_has_no_knee_and_is_not_decided_by_trial_number() -> None:
    a = Run(0, {"k": 1}, (0.90, 0.030))
    b = Run(1, {"k": 2}, (0.80, 0.020))
    worst = Run(2, {"k": 3}, (0.50, 0.060))
    first = choose(*_front_and_all([a, b, worst]))
    renumbered = choose(
        *_front_and_all([Run(0, b.params, b.values), Run(1, a.params, a.values), worst])
    )
    assert first is not None and renumbered is not None
    assert not first.has_knee and "no knee" in first.method
    assert first.configuration.params == renumbered.configuration.params
    # scaled over all three: a is 0 from ideal in SSIM, 0.25 in MSE; b is 0.25 and 0
    # in the other order, so make it asymmetric and check the nearer one wins
    c = Run(1, {"k": 2}, (0.85, 0.020))
    chosen = choose(*_front_and_all([a, c, worst]))
    assert chosen is not None and chosen.configuration.params == {"k": 2}


def test_knee_of_three_or_more() -> None:
    runs = [
        Run(0, {"k": 1}, (0.95, 0.050)),
        Run(1, {"k": 2}, (0.90, 0.021)),
        Run(2, {"k": 3}, (0.60, 0.020)),
    ]
    chosen = choose(*_front_and_all(runs))
    assert chosen is not None and chosen.has_knee
    assert chosen.configuration.params == {"k": 2}


def test_confirmation_plan_asks_only_for_missing_seeds_nearest_the_knee_first() -> None:
    runs = [
        Run(0, {"k": 1}, (0.95, 0.050)),
        Run(1, {"k": 2}, (0.90, 0.021)),
        Run(2, {"k": 2}, (0.90, 0.021)),
        Run(3, {"k": 3}, (0.60, 0.020)),
        Run(4, {"k": 4}, (0.50, 0.090)),  # dominated: never confirmed
    ]
    plan = confirmation_plan(group_runs(runs), MAXIMIZE, repeats=2)
    assert [(c.params["k"], missing) for c, missing in plan] == [(2, 1), (1, 2), (3, 2)]
    assert confirmation_plan(group_runs(runs), MAXIMIZE, repeats=2, cap=1) == plan[:1]
    assert confirmation_plan(group_runs(runs), MAXIMIZE, repeats=0) == []


def _front_and_all(runs):
    configurations = group_runs(runs)
    return pareto_front(configurations, MAXIMIZE), MAXIMIZE, configurations


def test_indistinguishable_needs_every_objective_within_the_noise() -> None:
    runs = [
        Run(0, {"k": 8}, (0.80, 0.040)),
        Run(1, {"k": 8}, (0.82, 0.042)),
        Run(2, {"k": 4}, (0.81, 0.041)),  # within the noise in both objectives
        Run(3, {"k": 4}, (0.79, 0.043)),
        Run(4, {"k": 2}, (0.81, 0.060)),  # same SSIM, far worse MSE
        Run(5, {"k": 2}, (0.80, 0.061)),
    ]
    configurations = group_runs(runs)
    k8 = configurations[0]
    ties = indistinguishable(k8, configurations, pooled_noise(configurations))
    assert [c.params["k"] for c in ties] == [4]
    assert indistinguishable(k8, configurations, None) == []
