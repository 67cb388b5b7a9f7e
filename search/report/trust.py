"""How far this search can be trusted, from its own trials: what no other tool reports.

- Early ranking: Spearman's rank correlation of the validation metric at each epoch with the
  last epoch's, over the complete trials whose curves are whole. A pruning rung at epoch e
  ranks trials as the end would only as far as that correlation is high.
- Agreement of the objectives: Spearman's rank correlation over the configurations' means of
  SSIM and of MSE (signed so that 1 means "better in one is better in the other"). When they
  agree, the front collapses to a point: one configuration wins both, there is no trade-off.
- Did the front stop moving: the hypervolume after each completed trial against a band of seed
  noise: the final front's hypervolume with every front mean moved by one pooled seed-to-seed
  SD, worse and better, in every objective. The trial after which the curve stayed inside the
  band is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search import convergence
from search import records as keys  # the stored names (search.records owns them)
from search.configurations import (
    Configuration,
    Run,
    group_runs,
    losses,
    pareto_front,
    pooled_noise,
)
from search.defaults import CONVERGENCE_WINDOW
from search.pareto import hypervolume_2d
from search.records import read_budget, read_convergence
from search.report import prose
from search.report.sections import HypervolumeInfo
from search.report.trials import StudyRecords

MIN_FOR_CORRELATION = 4  # Spearman's rho over fewer points says next to nothing


@dataclass(frozen=True)
class EpochAgreement:
    epoch: int
    rho: float
    n: int


@dataclass(frozen=True)
class TrustInfo:
    epochs: list[EpochAgreement] = field(default_factory=list)
    epoch_sentences: list[str] = field(default_factory=list)
    objectives_rho: float | None = None
    objectives_sentence: str | None = None
    band: tuple[float, float] | None = None
    settled_after: int | None = None
    front_sentence: str | None = None
    convergence_sentence: str | None = None


def _spearman(a: list[float], b: list[float]) -> float | None:
    from scipy import stats

    if len(a) < MIN_FOR_CORRELATION or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    rho = stats.spearmanr(a, b).statistic
    return None if not np.isfinite(rho) else float(rho)


def _epoch_agreement(
    records: StudyRecords, rungs: list[int]
) -> tuple[list[EpochAgreement], list[str]]:
    error = records.error or records.objectives[-1]
    key = f"val_{error.name.lower()}"
    curves = []
    for trial in records.complete:
        values = {
            int(r["epoch"]): float(r[key])
            for r in trial.curve()
            if isinstance(r.get(key), int | float)
        }
        if values:
            curves.append(values)
    if not curves:
        return [], []
    last = max(max(c) for c in curves)
    whole = [c for c in curves if set(range(1, last + 1)) <= set(c)]
    rows = []
    for epoch in range(1, last):
        rho = _spearman([c[epoch] for c in whole], [c[last] for c in whole])
        if rho is not None:
            rows.append(EpochAgreement(epoch, rho, len(whole)))
    if not rows:
        return [], [
            f"Too few complete trials with a whole learning curve ({len(whole)}) to say how "
            f"early the ranking by validation {error.name} settles; it needs "
            f"{MIN_FOR_CORRELATION}."
        ]
    listed = ", ".join(f"epoch {r.epoch} ρ = {r.rho:.2f}" for r in rows)
    sentences = [
        f"Rank correlation (Spearman's ρ) of validation {error.name} at each epoch with epoch "
        f"{last}, over the {rows[0].n} complete trials with a whole curve: {listed}."
    ]
    for rung in rungs:
        at = next((r for r in rows if r.epoch == rung), None)
        if at is None:
            continue
        rho = round(at.rho, 2)  # judged as printed
        if rho >= 0.9:
            meaning = "trials are ranked there almost as at the end, so pruning at it loses little"
        elif rho >= 0.7:
            meaning = (
                "the ranking there mostly holds to the end, but a trial ranked low at it can "
                "still finish among the best, so a strict cut there can prune one"
            )
        else:
            meaning = (
                "the ranking there says little about the final one, so pruning at it is close "
                "to pruning at random; a later rung or a wider margin would be safer"
            )
        sentences.append(f"At the pruning rung, epoch {rung}, ρ = {at.rho:.2f}: {meaning}.")
    return rows, sentences


def _objectives_agreement(
    records: StudyRecords, configurations: list[Configuration], front: list[Configuration]
) -> tuple[float | None, str | None]:
    if len(records.objectives) != 2 or len(configurations) < MIN_FOR_CORRELATION:
        return None, None
    points = losses(configurations, records.maximize)  # lower is better in both
    rho = _spearman(list(points[:, 0]), list(points[:, 1]))
    if rho is None:
        return None, None
    a, b = (o.name for o in records.objectives)
    if round(rho, 2) >= 0.95:
        meaning = f"they agree almost perfectly (a configuration better in {a} is better in {b})"
    elif round(rho, 2) >= 0.8:
        meaning = f"they mostly agree (a configuration better in {a} is usually better in {b})"
    elif round(rho, 2) >= 0.3:
        meaning = "they agree only in part"
    else:
        meaning = "they do not agree: being better in one says little about the other"
    text = (
        f"{a} and {b} rank the {len(configurations)} configurations (by their means) with "
        f"Spearman's ρ = {rho:.2f}: {meaning}."
    )
    if len(front) == 1:
        text += (
            " A one-point front is what agreement looks like: one configuration is best in "
            "both, so there is no trade-off to choose along, and the knee rule has nothing to do."
        )
    return rho, text


def _front_settled(
    records: StudyRecords, configurations: list[Configuration], hv: HypervolumeInfo | None
) -> tuple[tuple[float, float] | None, int | None, str | None]:
    noise = pooled_noise(configurations)
    if hv is None or not hv.values or len(records.objectives) != 2:
        return None, None, None
    if noise is None:
        return (
            None,
            None,
            (
                "Whether the front stopped moving cannot be judged: no configuration was run more "
                "than once, so the seed noise that a change must exceed is unknown."
            ),
        )
    front = pareto_front(configurations, records.maximize)
    reference = np.array(
        [-hv.reference[o.name] if o.maximize else hv.reference[o.name] for o in records.objectives]
    )
    points = losses(front, records.maximize)
    sd = np.array(noise.sd)
    low = hypervolume_2d(points + sd, reference)
    high = hypervolume_2d(points - sd, reference)
    outside = [i for i, v in enumerate(hv.values) if not low <= v <= high]
    sds = ", ".join(
        f"{o.name} {prose.fmt_metric(o.name, noise.sd[o.index])}" for o in records.objectives
    )
    band = (
        f"{low:.4g} to {high:.4g}, the final front's hypervolume with each front mean moved "
        f"one pooled seed-to-seed SD ({sds}) worse or better"
    )
    if not outside:
        return (
            (low, high),
            hv.numbers[0],
            (
                f"The hypervolume was inside the seed-noise band ({band}) from the first complete "
                "trial on: the search never moved the front by more than seed noise."
            ),
        )
    last_out = outside[-1]
    if last_out == len(hv.values) - 1:
        return (
            (low, high),
            None,
            (
                f"The front was still moving at the last trial: its hypervolume "
                f"{hv.values[-1]:.4g} lies outside the seed-noise band ({band}); more trials may "
                "still improve it."
            ),
        )
    after = hv.numbers[last_out]
    later = len(hv.values) - 1 - last_out
    return (
        (low, high),
        after,
        (
            f"The hypervolume has stayed inside the seed-noise band ({band}) after trial {after}: "
            f"the {prose.fmt_count(later, 'complete trial')} since moved the front by no more "
            "than seed noise, a sign that more trials of this kind would add little."
        ),
    )


def _noise_words(source: str) -> str:
    """The noise a convergence result used, as a phrase: "this study's own seed noise (3
    degrees of freedom)" or "the seed noise recorded by the pruning benchmark"."""
    own = "this study's, "
    if source.startswith(own):
        return f"this study's own seed noise ({source[len(own) :]})"
    return f"the seed noise {source}" if source else "the seed noise"


def _convergence(records: StudyRecords) -> str | None:
    """Where the front stopped moving: the stored record of `run`, or the same rule again
    (search/convergence.py) for a study that lacks it. A record written when sampling ended
    says so, and that the trials after it (confirmation runs) are not in it."""
    result = convergence.from_record(read_convergence(records.attrs))
    stored = result is not None
    if result is None and len(records.objectives) == 2 and records.complete:
        runs = [Run(t.number, t.params, t.values) for t in records.complete if t.values]
        finished = [t.number for t in records.trials if t.state in ("COMPLETE", "PRUNED")]
        budget = read_budget(records.attrs) or {}
        stored_epochs = budget.get("epochs")
        epochs = stored_epochs if isinstance(stored_epochs, int) else 1
        noise, source = convergence.study_noise(group_runs(runs), epochs)
        result = convergence.convergence(
            runs, finished, CONVERGENCE_WINDOW, records.maximize, noise, source
        )
    if result is None or result.stopped_at is None:
        return None
    verdict = (
        "the window has passed, so by that rule the search had converged"
        if result.converged
        else "short of the window, so by that rule the search had not yet converged"
    )
    text = (
        f"By the stopping rule of `run --until-converged`, the seed-mean front stopped moving "
        f"beyond {_noise_words(result.noise_source)} at trial {result.stopped_at}, with "
        f"{prose.fmt_count(result.trials_since, 'finished trial')} after it against a window "
        f"of {result.window}: {verdict}."
    )
    finished_now = sum(1 for t in records.trials if t.state in ("COMPLETE", "PRUNED"))
    later = finished_now - result.finished
    if stored and later > 0:
        text += (
            f" `run` judged this when sampling ended, after {result.finished} finished "
            f"trials; the {prose.fmt_count(later, 'trial')} finished since (confirmation runs "
            f"or a later run of the study) {'is' if later == 1 else 'are'} not part of it, so it "
            "counts differently from the hypervolume above."
        )
    return text


def trust_info(
    records: StudyRecords,
    configurations: list[Configuration],
    front: list[Configuration],
    hv: HypervolumeInfo | None,
) -> TrustInfo:
    pruning = records.attrs.get(keys.PRUNING)
    rungs = pruning.get("rungs") if isinstance(pruning, dict) and pruning.get("enabled") else []
    rungs = [int(r) for r in rungs if isinstance(r, int | float)] if isinstance(rungs, list) else []
    epochs, epoch_sentences = _epoch_agreement(records, rungs)
    rho, objectives_sentence = _objectives_agreement(records, configurations, front)
    band, settled, front_sentence = _front_settled(records, configurations, hv)
    return TrustInfo(
        epochs,
        epoch_sentences,
        rho,
        objectives_sentence,
        band,
        settled,
        front_sentence,
        _convergence(records),
    )
