"""Page one: the answer. The recommended configuration in words and parameters, its mean ± SD
over its seeds (validation and test), what the noise cannot tell from it (with the thresholds
in every objective), its representative run's reconstructions, the budget in one line, and a
caveat sentence for each reason not to trust it yet. Every sentence of page one is built here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from search import records as keys  # the stored names (search.records owns them)
from search.configurations import Configuration
from search.records import read_runs
from search.report import prose
from search.report.artifacts import ArtifactReader
from search.report.reconstructions import read_panel, representative_with
from search.report.sections import Budget, DataProvenance, Recommendation, ReconstructionPanel
from search.report.trials import StudyRecords, TrialRecord
from search.shell_words import split_words
from search.storage import redact_argv
from search.terminal import SHOWN_LIMIT

# Fewer seeds than this behind a claim get a caveat: two runs give an SD, barely.
MIN_SEEDS = 3


@dataclass(frozen=True)
class AnswerInfo:
    """What page one says; `headline` None when nothing completed."""

    headline: str | None
    params: dict[str, Any] = field(default_factory=dict)
    results: list[str] = field(default_factory=list)
    ties: str | None = None
    budget: str = ""
    caveats: list[str] = field(default_factory=list)
    originals_png: bytes | None = None
    panel: ReconstructionPanel | None = None
    # the representative run's validation error still fell in its last epoch (undertrained)
    still_improving: bool = False


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _a(number: object) -> str:
    """The article before a number said aloud: "an 8-unit", "an 11-unit", "a 16-unit"."""
    text = str(number)
    return "an" if text.startswith("8") or text in ("11", "18") else "a"


def in_words(params: dict[str, Any]) -> str:
    """The model a parameter set describes, as a reader would say it."""
    p = dict(params)
    words = []
    if "latent_dim" in p:
        k = p.pop("latent_dim")
        words.append(f"{_a(k)} {k}-dimensional latent space")
    if "n_layers" in p:
        layers = _count(int(p.pop("n_layers")), "convolutional layer")
        filters = f" of {p.pop('filters')} filters" if "filters" in p else ""
        words.append(layers + filters)
    if "dense_units" in p:
        units = p.pop("dense_units")
        words.append(f"{_a(units)} {units}-unit dense layer")
    if "loss" in p:
        beta = f" at beta {prose.fmt_number(p.pop('beta'))}" if "beta" in p else ""
        words.append(f"{str(p.pop('loss')).upper()} reconstruction loss{beta}")
    words += [f"{name} {prose.fmt_number(value)}" for name, value in p.items()]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _mean_sd(name: str, mean: float | None, sd: float | None) -> str:
    if mean is None:
        return f"{name} -"
    spread = "" if sd is None else f" ± {prose.fmt_metric(name, sd)}"
    return f"{name} {prose.fmt_metric(name, mean)}{spread}"


def _results(rec: Recommendation, records: StudyRecords) -> list[str]:
    runs = ", ".join(str(n) for n in rec.numbers)
    over = (
        f"mean ± SD over its {rec.n} seeds: trials {runs}"
        if rec.n > 1
        else f"a single run (trial {rec.number}), no SD"
    )
    validation = "; ".join(
        _mean_sd(o.name, rec.values[o.name], rec.sd[o.name]) for o in records.objectives
    )
    lines = [f"Validation: {validation} ({over})."]
    if any(rec.test_values.get(o.name) is not None for o in records.objectives):
        test = "; ".join(
            _mean_sd(o.name, rec.test_values.get(o.name), rec.test_sd.get(o.name))
            for o in records.objectives
        )
        of = f" ({rec.n_test} of its {rec.n} runs)" if rec.n_test < rec.n else ""
        lines.append(f"Held-out test: {test}{of}.")
    return lines


def validation_scored(budget: Budget, data: DataProvenance | None) -> str | None:
    """How many validation images were scored, and how that relates to `validation_subset`
    (a cap, which the split's own size may be under): "400 validation images (all of the
    split: validation_subset 500 is only a cap)"; None when either is unrecorded."""
    cap = budget.settings.get("validation_subset")
    available = (data.counts if data is not None else {}).get("validation")
    if not isinstance(cap, int | float) or available is None:
        return None
    scored = min(int(cap), int(available))
    text = f"{scored:,} validation images"
    if int(cap) > int(available):
        text += f" (all of the split: validation_subset {int(cap):,} is only a cap)"
    elif int(cap) < int(available):
        text += f" (the first {scored:,} of {int(available):,}: validation_subset)"
    return text


def settings_items(budget: Budget, data: DataProvenance | None) -> list[str]:
    """The budget per trial as "name value" items, validation_subset with what it meant here,
    so that "validation_subset 500" never stands unexplained beside "validation 400"."""
    available = (data.counts if data is not None else {}).get("validation")
    items = []
    for name, value in budget.settings.items():
        item = f"{name} {prose.fmt_number(value)}"
        if name == "validation_subset" and isinstance(value, int | float) and available:
            if int(value) > int(available):
                item += f" (a cap: the split has {int(available):,}, all scored)"
            elif int(value) < int(available):
                item += f" (the first {int(value):,} of the split's {int(available):,} scored)"
        items.append(item)
    return items


def budget_line(budget: Budget, data: DataProvenance | None) -> str:
    """The budget in one line, saying how validation_subset relates to the images scored."""
    states = budget.states
    parts = [f"{states['COMPLETE']} complete"]
    parts += [
        f"{states[s]} {w}" for s, w in (("PRUNED", "pruned"), ("FAIL", "failed")) if states[s]
    ]
    line = f"{_count(budget.n_trials, 'trial')} ({', '.join(parts)})"
    settings = budget.settings
    if settings.get("epochs") is not None:
        line += f" of up to {_count(int(settings['epochs']), 'epoch')}"
    counts = data.counts if data is not None else {}
    if counts.get("train") is not None:
        line += f" on {counts['train']:,} training images"
    scored = validation_scored(budget, data)
    if scored is not None:
        line += f", scored after each epoch on {scored}"
    if budget.elapsed_seconds is not None:
        line += f"; {prose.fmt_duration(budget.elapsed_seconds)} in all"
    return line + "."


def longer_command(records: StudyRecords, epochs: int) -> str:
    """The study's first recorded command, as a new study with twice the epochs."""
    runs = read_runs(records.attrs)
    first = runs[0].get("command") if isinstance(runs, list) and runs else None
    name = f"{records.name}-{2 * epochs}-epochs"
    if not isinstance(first, str) or len(first) > SHOWN_LIMIT:  # an absurd one is not repeated
        return prose.run_command(name, f"--epochs {2 * epochs}")
    try:
        words = redact_argv(split_words(first))  # older studies stored commands unredacted
    except ValueError:
        return prose.run_command(name, f"--epochs {2 * epochs}")
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--epochs", "--study"):
            skip = True
            continue
        if word.startswith(("--epochs=", "--study=")):
            continue
        out.append(word)
    at = out.index("run") + 1 if "run" in out else len(out)
    out[at:at] = ["--study", name, "--epochs", str(2 * epochs)]
    return shlex.join(out)


def _still_improving(trial: TrialRecord, records: StudyRecords) -> str | None:
    """The representative run's last-epoch change in validation MSE, when it still fell."""
    error = records.error
    if error is None:
        return None
    key = f"val_{error.name.lower()}"
    curve = [r for r in trial.curve() if isinstance(r.get(key), int | float)]
    if len(curve) < 2:
        return None
    last, before = float(curve[-1][key]), float(curve[-2][key])
    change = last - before
    if change >= 0:
        return None
    epochs, previous = int(curve[-1]["epoch"]), int(curve[-2]["epoch"])
    return (
        f"Still improving: validation {error.name} of trial {trial.number} fell by "
        f"{prose.fmt_metric(error.name, -change)} in its last epoch (epoch {previous} "
        f"to {epochs}, {prose.fmt_metric(error.name, before)} to "
        f"{prose.fmt_metric(error.name, last)}), so these models are undertrained at "
        f"{_count(epochs, 'epoch')}; this would train longer: "
        f"`{longer_command(records, epochs)}`."
    )


def answer_info(
    records: StudyRecords,
    rec: Recommendation | None,
    chosen: Configuration | None,
    front: list[Configuration],
    ties_sentence: str | None,
    budget: Budget,
    data: DataProvenance | None,
    reader: ArtifactReader,
) -> AnswerInfo:
    line = budget_line(budget, data)
    if rec is None or chosen is None:
        return AnswerInfo(None, budget=line)
    headline = (
        f"Recommended: {in_words(rec.params)} (the configuration first run as trial "
        f"{rec.number}), chosen as {rec.method}."
    )
    caveats = []
    trial = representative_with(records, chosen, "grid") or records.trial(
        rec.representative or rec.number
    )
    improving = _still_improving(trial, records)
    if improving:
        caveats.append(improving)
    if len(front) == 1:
        names = " and ".join(o.name for o in records.objectives)
        caveats.append(
            f"One-point front: this configuration's mean is best in both {names} at once, so "
            "the study saw no trade-off between them; a front of one is a winner at this "
            "budget, not a choice among trade-offs."
        )
    if rec.n < MIN_SEEDS:
        caveats.append(
            f"Few seeds: the mean rests on {_count(rec.n, 'run')}, fewer than {MIN_SEEDS}, so "
            f"its SD is {'unmeasured' if rec.n == 1 else 'a rough estimate'}; "
            f"`{prose.confirm_command(records.name, MIN_SEEDS - 1)}` would add seeds."
        )
    thin = [tie for tie in rec.ties if tie.n < MIN_SEEDS]
    if thin:
        ns = ", ".join(str(tie.n) for tie in thin)
        if len(rec.ties) == 1:
            which = "the configuration named above as no different rests"
        elif len(thin) == len(rec.ties):
            which = f"all {len(thin)} configurations named above as no different rest"
        else:
            which = (
                f"{len(thin)} of the {len(rec.ties)} configurations named above as no "
                f"different {'rests' if len(thin) == 1 else 'rest'}"
            )
        caveats.append(
            f"Few seeds behind the comparison: {which} on fewer than {MIN_SEEDS} runs "
            f"(n = {ns}); more seeds could still separate them."
        )
    originals, panel = None, None
    has_grid = bool(trial.dict_attr(keys.ARTIFACTS).get("grid"))
    read = read_panel(records, trial, chosen, reader) if has_grid else None
    if read is not None:
        originals, panel = read
    return AnswerInfo(
        headline=headline,
        params=dict(rec.params),
        results=_results(rec, records),
        ties=ties_sentence,
        budget=line,
        caveats=caveats,
        originals_png=originals,
        panel=panel,
        still_improving=improving is not None,
    )
