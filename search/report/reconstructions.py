"""Section 3, reconstructions: one named run per front configuration, spread along the front,
its stored grid split into the originals and that run's reconstructions.

The run shown for a configuration is its representative (the run nearest the configuration's
mean, `search.report.representative`), not its first or its best seed, and every number under
a picture is that run's own.
"""

from __future__ import annotations

from search import records as keys  # the stored names (search.records owns them)
from search.configurations import Configuration
from search.report import prose
from search.report.analysis import MAX_SHOWN_FRONT, spread_along_front
from search.report.artifacts import ArtifactReader, split_grid
from search.report.representative import nearest_the_mean
from search.report.sections import ReconstructionInfo, ReconstructionPanel
from search.report.trials import StudyRecords, TrialRecord


def representative_with(
    records: StudyRecords, configuration: Configuration, artifact: str | None
) -> TrialRecord | None:
    """The run nearest the configuration's mean among those that stored `artifact` (any run
    for None), or None when none did."""
    for number in nearest_the_mean(configuration):
        trial = records.trial(number)
        if artifact is None or trial.dict_attr(keys.ARTIFACTS).get(artifact):
            return trial
    return None


def shown_runs(
    records: StudyRecords, front: list[Configuration], artifact: str | None
) -> list[TrialRecord]:
    """One representative run per front configuration, spread along the front."""
    error = records.error or records.objectives[-1]
    shown = []
    for configuration in spread_along_front(front, error.index, MAX_SHOWN_FRONT):
        trial = representative_with(records, configuration, artifact)
        if trial is not None:
            shown.append(trial)
    return shown


def run_label(records: StudyRecords, trial: TrialRecord, configuration: Configuration) -> str:
    """What a picture of one run says about it: its own numbers, and which run it is."""
    values = ", ".join(
        f"{o.name} {prose.fmt_metric(o.name, trial.value(o))}" for o in records.objectives
    )
    if configuration.n == 1:
        return f"trial {trial.number}, the configuration's only run: {values}"
    return (
        f"trial {trial.number}, of its configuration's {configuration.n} runs the one nearest "
        f"their mean: {values}"
    )


def read_panel(
    records: StudyRecords,
    trial: TrialRecord,
    configuration: Configuration,
    reader: ArtifactReader,
) -> tuple[bytes | None, ReconstructionPanel] | None:
    """(originals, reconstructions panel) from a run's stored grid, or None if unreadable."""
    grid = reader.read_png(trial.dict_attr(keys.ARTIFACTS).get("grid"))
    if grid is None:
        return None
    halves = split_grid(grid)
    label = run_label(records, trial, configuration)
    if halves is None:  # a grid of another layout is shown whole, and said to be
        label = f"{label} (originals left, reconstructions right)"
    panel = ReconstructionPanel(trial.number, label, halves[1] if halves else grid)
    return (halves[0] if halves else None), panel


def reconstruction_info(
    records: StudyRecords,
    front: list[Configuration],
    configurations: list[Configuration],
    reader: ArtifactReader,
) -> ReconstructionInfo:
    if not front:
        return ReconstructionInfo(None, [], "No complete trial, so no reconstructions.")
    with_grid = [c for c in front if representative_with(records, c, "grid") is not None]
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
    for trial in shown_runs(records, with_grid, "grid"):
        read = read_panel(records, trial, of_run[trial.number], reader)
        if read is None:
            continue
        if originals is None:
            originals = read[0]
        panels.append(read[1])
    note = None if panels else "The stored grids of the Pareto trials could not be read."
    return ReconstructionInfo(originals, panels, note)
