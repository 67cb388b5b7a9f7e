"""`run --total-trials N` (one budget for the whole study, search/run/total.py) and the
measured ETA (search/run/eta.py).

First the counting rules on a real Optuna study (no TensorFlow), then real `python -m search
run` processes started at different times, on a journal file and on the real PostgreSQL
server, killed and restarted: the study ends with exactly N finished sampled trials.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import records
from search.errors import UsageError
from search.run import eta, total
from search.run.budget import BudgetReached
from search.run.options import RunOptions, validate
from search.storage import open_storage
from tests.test_distributed import (
    HEARTBEAT,
    RUN_TIMEOUT_S,
    TINY,
    _env,
    _finish,
    _search,
    _trials,
    _wait_for_second_trial,
)

# -- the counting rules, on a real in-memory study ------------------------------------------


def _study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"])


def _finish_sampled(study: optuna.Study, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, [0.5, 0.1])


def test_a_trial_beyond_the_budget_is_given_back_and_not_counted() -> None:
    study = _study()
    _finish_sampled(study, 2)
    trial = study.ask()
    with pytest.raises(BudgetReached):
        total.claim(study, trial, 2, seeds=3)
    study.tell(trial, state=TrialState.FAIL)
    frozen = study.get_trials()[-1]
    assert records.is_surplus(frozen.user_attrs)
    assert total.sampled_counts(study.get_trials()) == (2, 0, 0)
    assert not total.sampling_left(study, 2)
    assert total.sampling_left(study, 3)
    from search.report.trials import read_study

    assert [t.number for t in read_study(study).trials] == [0, 1]  # not in the report


@pytest.mark.parametrize(
    ("first_ends", "second"), [(TrialState.COMPLETE, "given back"), (TrialState.FAIL, "trains")]
)
def test_two_workers_that_both_saw_n_minus_1_train_one_trial_between_them(
    first_ends: TrialState, second: str
) -> None:
    """Both ask for a trial at N-1; the later number waits for the earlier one: given back
    when that one finished, trained when it failed (its worker died)."""
    study = _study()
    _finish_sampled(study, 2)
    earlier, later = study.ask(), study.ask()
    total.claim(study, earlier, 3, seeds=3)  # nothing ahead of it: it trains
    outcome: list[str] = []

    def claim_later() -> None:
        try:
            total.claim(study, later, 3, seeds=3)
            outcome.append("trains")
        except BudgetReached:
            outcome.append("given back")

    waiter = threading.Thread(target=claim_later)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive(), outcome  # waits while the earlier one runs
    if first_ends == TrialState.COMPLETE:
        study.tell(earlier, [0.5, 0.1])
    else:
        study.tell(earlier, state=TrialState.FAIL)
    waiter.join(timeout=30)
    assert outcome == [second]


def test_a_designed_trial_enqueued_twice_runs_once_and_counts_apart() -> None:
    study = _study()
    point = records.sweep_point("latent_dim", 4, 0)
    for _ in range(2):  # two workers enqueued the same sweep at the same moment
        study.enqueue_trial({"latent_dim": 4}, user_attrs=records.sweep_tag(point))
    first, second = study.ask(), study.ask()
    total.claim(study, first, 1, seeds=3)
    with pytest.raises(BudgetReached):
        total.claim(study, second, 1, seeds=3)
    study.tell(first, [0.5, 0.1])
    study.tell(second, state=TrialState.FAIL)
    assert total.sampled_counts(study.get_trials()) == (0, 0, 0)  # designed: counted apart
    assert total.sweep_points_to_enqueue(study, [({"latent_dim": 4}, point)]) == []
    other = records.sweep_point("latent_dim", 4, 1)  # another repeat is another point
    assert total.sweep_points_to_enqueue(study, [({"latent_dim": 4}, other)]) != []


def test_a_confirmation_run_beyond_its_configurations_seeds_is_given_back() -> None:
    """Two workers finished at once and both planned the same confirmation run."""
    study = _study()
    params = {"latent_dim": 4}
    study.enqueue_trial(params)
    original = study.ask()
    original.suggest_int("latent_dim", 1, 8)
    study.tell(original, [0.5, 0.1])
    for _ in range(2):
        study.enqueue_trial(params, user_attrs=records.confirmation_tag(original.number))
    first, second = study.ask(), study.ask()  # claimed before they suggest, as in a run
    total.claim(study, first, 1, seeds=2)  # the configuration's second seed: it runs
    with pytest.raises(BudgetReached):
        total.claim(study, second, 1, seeds=2)  # a third run of a 2-seed confirmation


def test_the_resume_command_keeps_the_study_wide_budget() -> None:
    from search.run.console import resume_command

    study = _study()
    _finish_sampled(study, 1)
    alone = resume_command(RunOptions(total_trials=5, study="s"), None, study)
    assert "--total-trials 5" in alone and "--trials" not in alone.replace("--total-trials", "")
    both = resume_command(RunOptions(total_trials=5, trials=3, study="s"), 4, study)
    assert "--total-trials 5" in both and "--trials 3" in both


def test_total_trials_below_one_is_refused() -> None:
    with pytest.raises(UsageError, match="--total-trials"):
        validate(RunOptions(total_trials=0))


# -- the ETA's arithmetic and its calibration -----------------------------------------------


def test_the_estimate_is_trials_left_times_the_measured_mean() -> None:
    measured = eta.Measured()
    measured.add(30.0, 6)
    measured.add(10.0, 2)  # pruned: shorter
    assert measured.per_trial == 20.0 and measured.per_epoch == 5.0
    assert measured.estimate(9) == 180.0
    line = measured.line(9, "CPU")
    assert "20.0 s per trial" in line and "5.0 s per epoch" in line and "3 min" in line
    assert "estimate" in line and "2 finished trials" in line
    assert math.isnan(eta.Measured().per_trial)
    assert [eta.duration(s) for s in (42, 600, 5 * 3600, 4 * 86400)] == [
        "42 s",
        "10 min",
        "5.0 h",
        "4.0 days",
    ]


def test_steps_per_trial_follow_the_preset() -> None:
    assert eta.steps_per_trial("full", 55_000) == 430 * 30
    assert eta.steps_per_trial("full", 55_000, epochs=2) == 430 * 2
    assert eta.steps_per_trial("quick", 55_000) == 63 * 6  # quick trains on 4,000 images


@pytest.mark.slow
def test_calibration_times_this_device() -> None:
    from search.data import load_mnist

    data = load_mnist("bundled", seed=0, subset=256)
    started = time.perf_counter()
    full, quick = eta.calibrate(("full", "quick"), data, {"full": 1})
    assert time.perf_counter() - started < 120
    for cost in (full, quick):
        assert cost.start_s > 0 and cost.seconds_per_step > 0
        assert cost.seconds_per_scored_image > 0 and cost.per_trial > cost.start_s
    assert full.steps_per_trial == 2 and quick.steps_per_trial == 4 * 6
    line = eta.cpu_full_preset_line(full, quick, 200)
    assert line.count("\n") == 0 and "--preset quick" in line and "200 trial" in line


# -- real worker processes ------------------------------------------------------------------


def _count(trials: list[optuna.trial.FrozenTrial]) -> Counter[str]:
    """finished sampled / designed, given back, other failures, still open."""
    counts: Counter[str] = Counter()
    for t in trials:
        designed = records.enqueued(t.system_attrs)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counts["designed" if designed else "sampled"] += 1
        elif t.state == TrialState.FAIL and records.is_surplus(t.user_attrs):
            counts["given back"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        else:
            counts["open"] += 1
    return counts


@pytest.mark.slow
def test_workers_started_at_different_times_on_a_journal_count_exactly(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/study.log"
    args = [*TINY, "--study", "total", "--storage", url, "--total-trials", "4"]
    sweep = ["--sweep", "latent_dim=2,4"]  # both name the sweep: it runs once
    first = _search(tmp_path, *args, *sweep)
    _wait_for_second_trial(url, "total", first)
    second = _search(tmp_path, *args, *sweep)
    outputs = [_finish(proc) for proc in (first, second)]
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    counts = _count(_trials(url, "total"))
    assert counts["sampled"] == 4 and counts["designed"] == 2, counts
    assert counts["failed"] == 0 and counts["open"] == 0, counts
    # The ETA: measured after this process's first finished trial, then on every line.
    printed = outputs[0][1] + outputs[0][2]
    assert printed.count("\ntime: ") == 1 and "s per epoch on CPU" in printed, printed[-3000:]
    assert "rest ~" in printed and "estimate" in printed

    # A worker that joins after the budget is used up says so and trains nothing.
    before = len(_trials(url, "total"))
    code, _, err = _finish(_search(tmp_path, *args, *sweep))
    assert code == 0, err[-3000:]
    assert "already holds 4 finished sampled trials" in err, err[-3000:]
    assert len(_trials(url, "total")) == before


@pytest.mark.slow
def test_workers_of_one_parent_share_the_study_wide_budget(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/study.log"
    args = [*TINY, "--study", "w", "--storage", url, "--total-trials", "3", "--workers", "2"]
    code, _, err = _finish(_search(tmp_path, *args))
    assert code == 0, err[-3000:]
    counts = _count(_trials(url, "w"))
    assert counts["sampled"] == 3 and counts["failed"] == 0 and counts["open"] == 0, counts


@pytest.mark.slow
def test_a_restarted_worker_on_postgresql_does_not_overshoot(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    url = fresh_postgres_url
    args = [*TINY, "--study", "restart", "--storage", url, "--total-trials", "3", *HEARTBEAT]
    crashed = _search(tmp_path, *args)
    _wait_for_second_trial(url, "restart", crashed)
    crashed.send_signal(signal.SIGKILL)
    crashed.communicate()
    late = _search(tmp_path, *args)  # joins late
    time.sleep(2)
    restarted = _search(tmp_path, *args)  # the crashed worker, started again
    for proc in (late, restarted):
        code, _, err = _finish(proc)
        assert code == 0, err[-3000:]
    trials = _trials(url, "restart")
    counts = _count(trials)
    assert counts["sampled"] == 3 and counts["open"] == 0, counts
    died = [t for t in trials if (t.user_attrs.get("fail_reason") or "").startswith("worker died")]
    assert len(died) == 1 and counts["failed"] == 1, counts  # the killed trial, retried once
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))


@pytest.mark.slow
def test_the_full_preset_on_a_cpu_says_so_once_with_the_quick_estimate(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path}/study.log"
    run = [a for a in TINY if a not in ("--preset", "smoke")]
    args = [*run, "--preset", "full", "--trials", "1", "--study", "f", "--storage", url]
    # One stream, so that the order of the lines is the order they were printed in.
    proc = subprocess.run(
        [sys.executable, "-m", "search", "run", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    err = proc.stdout
    assert proc.returncode == 0, err[-3000:]
    lines = err.splitlines()
    warnings = [i for i, line in enumerate(lines) if "the full preset on a CPU" in line]
    on_cpu = any(line.startswith("device: CPU") for line in lines)
    if not on_cpu:
        assert warnings == []
        return
    assert len(warnings) == 1, err[-3000:]
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    assert warnings[0] < first_trial and "--preset quick: about" in lines[warnings[0]]
    study = optuna.load_study(study_name="f", storage=open_storage(url))
    assert (
        records.read_budget(records.study_attrs(study))["preset"] == "full"
    )  # nothing changed behind
