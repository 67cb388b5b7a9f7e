"""Section 2, the Pareto front: one row per front configuration (mean over its seeds, SD, n),
and the sentences on how the front was measured and how its test metrics compare."""

from __future__ import annotations

import numpy as np

from search.configurations import Configuration
from search.report import prose
from search.report.sections import DataProvenance, ParetoInfo, ParetoRow
from search.report.trials import StudyRecords


def pareto_info(
    records: StudyRecords,
    configurations: list[Configuration],
    front: list[Configuration],
    recommended: Configuration | None,
    data: DataProvenance | None,
) -> ParetoInfo:
    objectives = records.objectives
    on_front = {c.key for c in front}
    rows = []
    for c in sorted(front, key=lambda c: (c.mean[-1], c.key)):  # by the last objective
        runs = [records.trial(n) for n in c.numbers]
        tests = []
        for o in objectives:
            tested = [v for t in runs if (v := t.metric("test", o)) is not None]
            tests.append(float(np.mean(tested)) if tested else None)
        rows.append(
            ParetoRow(
                number=c.first,
                numbers=c.numbers,
                params=dict(c.params),
                values=c.mean,
                sd=c.sd,
                test_values=tuple(tests),
                is_knee=recommended is not None and c.key == recommended.key,
            )
        )
    has_test = any(v is not None for row in rows for v in row.test_values)
    sentences = []
    n_trials = sum(c.n for c in configurations)
    sentences.append(
        f"Each point is a configuration (a parameter set) at its mean over its runs under "
        f"different seeds; the {prose.fmt_count(n_trials, 'complete trial')} "
        f"{'is' if n_trials == 1 else 'are'} "
        f"{prose.fmt_count(len(configurations), 'configuration')}. " + _repeated_sentence(front)
    )
    if has_test:
        for objective in objectives:
            # test minus validation on the same runs, averaged per configuration, then over
            # the front: a configuration whose runs lack test metrics is left out
            per_configuration = []
            for row in rows:
                runs = [records.trial(n) for n in row.numbers]
                differences = [
                    test - t.value(objective)
                    for t in runs
                    if (test := t.metric("test", objective)) is not None
                ]
                if differences:
                    per_configuration.append(float(np.mean(differences)))
            if not per_configuration:
                continue
            diff = float(np.mean(per_configuration))
            sentences.append(
                (
                    "On the front configuration, "
                    if len(per_configuration) == len(rows) == 1
                    else f"On the {prose.fmt_count(len(per_configuration), 'front configuration')}"
                    " with test metrics, "
                )
                + f"test {objective.name} differs from validation {objective.name} by {diff:+.5f} "
                + "on average (test minus validation)."
            )
        # which images are "test" is said once, in the summary (`held_out_sentence`)
        sentences.append(
            "The front was selected on validation metrics; the sampler and the pruner never "
            "read a test image, so this difference shows how much of the validation ranking "
            "carries over to unseen images."
        )
    n_front, n_all = len(front), len(configurations)
    intro = (
        f"{n_front} of {prose.fmt_count(n_all, 'configuration')} "
        f"{'is' if n_front == 1 else 'are'} on the front"
        + (f", ordered by {objectives[-1].name}" if n_front > 1 else "")
        + "; each row is a configuration named by its first trial, with the mean over its n "
        "runs (SD in brackets where n > 1)"
        + (
            "; the recommended one is highlighted and starred (★)."
            if n_front > 1
            else "; it is the recommended one (★)."
        )
    )
    return ParetoInfo(
        intro=intro,
        objectives=objectives,
        numbers=[c.first for c in configurations],
        values=[c.mean for c in configurations],
        n=[c.n for c in configurations],
        sd=[c.sd for c in configurations],
        on_front=[c.key in on_front for c in configurations],
        params=[dict(c.params) for c in configurations],
        front=rows,
        param_names=records.param_names(),
        has_test=has_test,
        n_trials=n_trials,
        sentences=sentences,
    )


def _repeated_sentence(front: list[Configuration]) -> str:
    """How many front configurations rest on more than one run, in words that fit n = 1."""
    if len(front) == 1:
        n = front[0].n
        return (
            f"The front configuration was run {n} times, under different seeds."
            if n > 1
            else "The front configuration is a single run, one draw."
        )
    repeated = sum(1 for c in front if c.n >= 2)
    return (
        f"{repeated} of the {len(front)} front configurations "
        f"{'was' if repeated == 1 else 'were'} run more than once"
        + ("; the others are single runs, one draw each." if repeated < len(front) else ".")
    )
