"""Confirmation runs: the front's configurations trained again under new seeds, so that the
study knows its noise and the front is made of means, not of lucky draws."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from search import configurations as configs
from search import records
from search.convergence import Convergence, convergence, study_noise
from search.run.budget import finished_count
from search.run.console import describe
from search.run.options import RunOptions
from search.run.setup import MAXIMIZE, epochs

log = logging.getLogger("search.run")

# Confirming can change the front (a configuration's mean moves), so the plan is made again
# after each round; a few rounds settle it, and a bound keeps a noisy front from running on.
CONFIRM_ROUNDS = 3


def completed_configurations(study: optuna.Study) -> list[configs.Configuration]:
    """The study's completed trials grouped into configurations (equal parameters)."""
    runs = [
        configs.Run(t.number, t.params, tuple(t.values))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]
    return configs.group_runs(runs)


def study_convergence(
    study: optuna.Study, options: RunOptions, look_back: int | None = None
) -> Convergence:
    """Where the study's seed-mean front stopped moving (search/convergence.py)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    runs = [
        configs.Run(t.number, t.params, tuple(t.values))
        for t in trials
        if t.state == TrialState.COMPLETE
    ]
    noise, source = study_noise(configs.group_runs(runs), epochs(options))
    return convergence(
        runs,
        [t.number for t in trials],
        options.convergence_window,
        MAXIMIZE,
        noise,
        source,
        look_back,
    )


def converged_now(study: optuna.Study, options: RunOptions) -> Convergence | None:
    """With --until-converged, the convergence that ends the search now; None to go on.

    Enqueued trials (a sweep, confirmation runs) are experiments: they run first, whatever the
    front does.
    """
    if not options.until_converged:
        return None
    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return None
    result = study_convergence(study, options, look_back=options.convergence_window)
    return result if result.converged else None


def confirm_front(
    study: optuna.Study,
    options: RunOptions,
    train: Callable[[int, int], int],
    deadline: float | None = None,
) -> int:
    """Train front configurations again under new seeds until each has `1 + confirm` runs.

    A confirmation run is a designed trial tagged `confirms: <the configuration's first trial>`;
    its seed is new (`--seed` + its trial number) and its budget the study's. The plan
    (configurations.confirmation_plan: at most 5, nearest the knee first) is made again after
    each round, since new means can move the front. `train(total, finished)` trains the
    enqueued runs until the study holds `total` finished trials (here, or in workers) and
    returns an exit code; so does this function.
    """
    if options.confirm < 1:
        return 0
    planned: dict[int, configs.Configuration] = {}
    for _ in range(CONFIRM_ROUNDS):
        plan = configs.confirmation_plan(completed_configurations(study), MAXIMIZE, options.confirm)
        trials = study.get_trials(deepcopy=False)
        # Runs already asked for (a run interrupted earlier, another machine at work) count.
        pending: dict[int, int] = {}
        for t in trials:
            confirms = records.read_confirms(t.user_attrs)
            if t.state in (TrialState.WAITING, TrialState.RUNNING) and confirms is not None:
                pending[confirms] = pending.get(confirms, 0) + 1
        needed = [(c, k - pending.get(c.first, 0)) for c, k in plan]
        needed = [(c, k) for c, k in needed if k > 0]
        waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
        if not needed and not waiting:
            break
        if deadline is not None and deadline <= time.monotonic():
            log.info("confirmation: skipped, --timeout reached; a later run confirms the front")
            break
        for configuration, runs in needed:
            planned[configuration.first] = configuration
            log.info(
                "confirmation: trial %d's configuration (%s) has %d run(s): %d more under new "
                "seeds",
                configuration.first,
                describe(configuration.params),
                configuration.n,
                runs,
            )
            for _ in range(runs):
                study.enqueue_trial(
                    dict(configuration.params),
                    user_attrs=records.confirmation_tag(configuration.first),
                    skip_if_exists=False,
                )
        finished = finished_count(study)
        to_train = waiting + sum(k for _, k in needed)
        code = train(finished + to_train, finished)
        if code != 0:
            return code
    if not planned:
        log.info(
            "confirmation: every front configuration considered (up to %d) has %d or more seeds",
            configs.MAX_CONFIRMED,
            1 + options.confirm,
        )
    _log_confirmed(study, planned)
    return 0


def _log_confirmed(study: optuna.Study, planned: dict[int, configs.Configuration]) -> None:
    """Say in the run log what was confirmed: each configuration's mean, SD and n now."""
    now = {c.first: c for c in completed_configurations(study)}
    for first in sorted(planned):
        configuration = now.get(first)
        if configuration is None:
            continue
        sd = configuration.sd or (math.nan, math.nan)
        log.info(
            "confirmed: trial %d's configuration over %d seeds: SSIM %.4f (SD %.4f), "
            "MSE %.5f (SD %.5f)",
            first,
            configuration.n,
            configuration.mean[0],
            sd[0],
            configuration.mean[1],
            sd[1],
        )
