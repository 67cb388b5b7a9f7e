"""Sections 6 and 7: parameter importance per objective, and search diagnostics (hypervolume,
pruning savings, trial timeline, workers)."""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import optuna

from search.configurations import Configuration, Run, group_runs, losses
from search.pareto import hypervolume_2d
from search.records import DEVICE, PRUNED_AT_EPOCH, PRUNING, WORKER
from search.report import prose
from search.report.sections import (
    Budget,
    DiagnosticsInfo,
    HypervolumeInfo,
    ImportanceInfo,
    ObjectiveImportance,
    PruningInfo,
    RungRow,
    TimelineBar,
    WorkerRow,
)
from search.report.trials import StudyRecords, TrialRecord, as_float

MIN_TRIALS_FOR_IMPORTANCE = 10
DASHBOARD_IMPORTANCE = (
    "optuna-dashboard's importance panel can rank the parameters differently: it uses another "
    "evaluator, PED-ANOVA, on every complete trial as a single draw, comparing the best 10 % "
    "with the rest, where this report fits fANOVA to each objective; with a few trials and "
    "repeated seeds of one configuration, the two can disagree, and neither is wrong."
)


def importance_info(study: optuna.Study, records: StudyRecords) -> ImportanceInfo:
    """fANOVA importance of each parameter, for each objective separately (`target=`).

    fANOVA fits a random forest to the objective and splits its variance among the parameters.
    It is used instead of Optuna's default PED-ANOVA because PED-ANOVA compares the top 10 % of
    trials with the rest, and one-factor sweep trials (all sharing one base configuration) crowd
    that top group and make the base configuration's fixed values look important.
    """
    complete = records.complete
    # fANOVA needs each assessed parameter in every complete trial.
    in_all = [n for n in records.param_names() if all(n in t.params for t in complete)]
    varying = [n for n in in_all if len({repr(t.params[n]) for t in complete}) > 1]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return ImportanceInfo(
            [],
            f"Importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; "
            f"this study has {len(complete)}.",
        )
    if not varying:
        return ImportanceInfo(
            [], "No parameter present in every complete trial took more than one value."
        )
    per_objective = []
    for objective in records.objectives:

        def target(trial: optuna.trial.FrozenTrial, i: int = objective.index) -> float:
            return trial.values[i]

        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notices, not findings
            importances = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=target, params=varying
            )
        per_objective.append(
            ObjectiveImportance(objective, {k: float(v) for k, v in importances.items()})
        )
    return ImportanceInfo(per_objective, None, DASHBOARD_IMPORTANCE)


def hypervolume_reference(
    records: StudyRecords, configurations: Sequence[Configuration]
) -> tuple[dict[str, float], str]:
    """Reference point from the data: each objective's worst configuration mean plus 10 % of
    the range of the means (so every configuration lies strictly inside the box)."""
    points = losses(configurations, records.maximize)
    worst = points.max(axis=0)
    span = worst - points.min(axis=0)
    margin = np.where(span > 0, 0.1 * span, np.maximum(0.1 * np.abs(worst), 1e-6))
    point = worst + margin
    reference = {
        o.name: float(-point[o.index] if o.maximize else point[o.index]) for o in records.objectives
    }
    where = ", ".join(
        f"{o.name} {prose.fmt_metric(o.name, reference[o.name])}" for o in records.objectives
    )
    return reference, (
        f"Reference point {where}: each objective's worst configuration mean plus 10 % of the "
        "range of the means, so the values compare trials of this study, not studies."
    )


def _hypervolume(records: StudyRecords, complete: list[TrialRecord]) -> HypervolumeInfo | None:
    if len(records.objectives) != 2 or not complete:
        return None
    ordered = sorted(complete, key=lambda r: r.number)
    runs = [Run(t.number, t.params, t.values) for t in ordered if t.values is not None]
    reference, note = hypervolume_reference(records, group_runs(runs))
    ref = np.array(
        [-reference[o.name] if o.maximize else reference[o.name] for o in records.objectives]
    )
    # the study as it stood after each completed trial: configurations and their means so far
    values = [
        hypervolume_2d(losses(group_runs(runs[: i + 1]), records.maximize), ref)
        for i in range(len(runs))
    ]
    basis = (
        "Computed on the configurations' means over their seeds as they stood after each "
        "completed trial, so a new seed that worsens a front configuration's mean can lower it."
    )
    return HypervolumeInfo(reference, note, [r.number for r in runs], values, basis)


def _pruning(records: StudyRecords, budget: Budget) -> PruningInfo:
    """Pruning counts of the sampled trials; designed trials are experiments, counted apart."""
    config = records.attrs.get(PRUNING) if isinstance(records.attrs.get(PRUNING), dict) else {}
    planned = as_float(budget.settings.get("epochs"))
    sampled = [t for t in records.trials if not t.designed]
    designed = [t for t in records.trials if t.designed]
    by_rung: dict[int, list[int]] = defaultdict(list)
    for trial in sampled:
        if trial.state != "PRUNED":
            continue
        epoch = trial.int_attr(PRUNED_AT_EPOCH) or trial.epochs_run() or 0
        by_rung[epoch].append(trial.epochs_saved(None if planned is None else int(planned)))
    rows = [RungRow(epoch, len(saved), sum(saved)) for epoch, saved in sorted(by_rung.items())]
    n_pruned = sum(r.n_pruned for r in rows)
    saved = sum(r.epochs_saved for r in rows)
    sentence = None
    if n_pruned:
        total = saved + budget.epochs_trained
        share = f" ({100 * saved / total:.1f} % of the epochs trained and saved)" if total else ""
        verb = "was" if n_pruned == 1 else "were"
        sentence = (
            f"{n_pruned} of the {prose.fmt_count(len(sampled), 'sampled trial')} {verb} pruned, "
            f"saving {saved} epochs{share}."
        )
    designed_pruned = sum(1 for t in designed if t.state == "PRUNED")
    designed_sentence = None
    if designed:
        designed_sentence = (
            f"{prose.fmt_count(len(designed), 'trial')} {'was' if len(designed) == 1 else 'were'} "
            "designed (sweeps, repeats, confirmation runs): experiments, exempt from pruning "
            "and not counted above."
        )
        if designed_pruned:
            designed_sentence += (
                f" Yet {designed_pruned} of them {'was' if designed_pruned == 1 else 'were'} "
                "pruned (the study was run by a version that pruned designed trials): their "
                "configurations lack the runs they were designed to give."
            )
    return PruningInfo(
        config={str(k): v for k, v in config.items()} if config else {},
        rows=rows,
        n_pruned=n_pruned,
        epochs_saved=saved,
        epochs_trained=budget.epochs_trained,
        sentence=sentence,
        n_sampled=len(sampled),
        n_designed=len(designed),
        n_designed_pruned=designed_pruned,
        designed_sentence=designed_sentence,
    )


def _timeline(records: StudyRecords) -> list[TimelineBar]:
    starts = [t.start for t in records.trials if t.start is not None]
    if not starts:
        return []
    origin = min(starts)
    ends = [t.complete for t in records.trials if t.complete is not None]
    last = max(ends) if ends else max(starts)
    bars = []
    for trial in records.trials:
        if trial.start is None:
            continue
        end = trial.complete or last
        bars.append(
            TimelineBar(
                number=trial.number,
                state=trial.state,
                start_s=(trial.start - origin).total_seconds(),
                end_s=max((end - origin).total_seconds(), (trial.start - origin).total_seconds()),
                worker=trial.text_attr(WORKER) or "-",
            )
        )
    return bars


def _workers(records: StudyRecords) -> list[WorkerRow]:
    by_worker: dict[str, list[TrialRecord]] = defaultdict(list)
    for trial in records.trials:
        by_worker[trial.text_attr(WORKER) or "-"].append(trial)
    return [
        WorkerRow(
            worker=worker,
            devices=", ".join(sorted({d for t in trials if (d := t.text_attr(DEVICE))})) or "-",
            states=dict(Counter(t.state for t in trials)),
        )
        for worker, trials in sorted(by_worker.items())
    ]


def diagnostics_info(records: StudyRecords, budget: Budget) -> DiagnosticsInfo:
    complete = sorted(records.complete, key=lambda r: r.number)
    return DiagnosticsInfo(
        hypervolume=_hypervolume(records, complete),
        pruning=_pruning(records, budget),
        timeline=_timeline(records),
        workers=_workers(records),
    )
