"""The one stderr line that says which stored artifacts the report could not read.

The report's notes say it on the page; a user at the terminal gets one `warning:` line (how
many, of which kinds, which trials), never a line per artifact: a study of a thousand trials
moved without its folder still gives one line of bounded length.
"""

from __future__ import annotations

from search import records as keys  # the stored names (search.records owns them)
from search.report import prose
from search.report.artifacts import ArtifactReader
from search.report.trials import StudyRecords

SHOWN_TRIALS = 5  # trial numbers named per kind; the rest are counted
SHOWN_KINDS = 5  # kinds named; the rest are counted


def unreadable_warning(records: StudyRecords, reader: ArtifactReader) -> str | None:
    """`warning: …` naming what `reader` could not read (missing, truncated, not of its kind,
    or leading outside the artifact folder), or None when it read everything it was asked."""
    missing, outside = set(reader.missing), set(reader.outside)
    if not missing and not outside:
        return None
    owners: dict[str, tuple[str, int]] = {}
    for trial in records.trials:
        for kind, artifact_id in trial.dict_attr(keys.ARTIFACTS).items():
            if isinstance(artifact_id, str):
                owners.setdefault(artifact_id, (str(kind), trial.number))
    by_kind: dict[str, set[int]] = {}
    unowned = 0
    for artifact_id in missing | outside:
        if artifact_id in owners:
            kind, number = owners[artifact_id]
            by_kind.setdefault(kind, set()).add(number)
        else:
            unowned += 1
    parts = [_kind_part(kind, numbers) for kind, numbers in sorted(by_kind.items())]
    if len(parts) > SHOWN_KINDS:
        parts = [*parts[:SHOWN_KINDS], f"{len(parts) - SHOWN_KINDS} more kinds"]
    if unowned:
        parts.append(f"{unowned} of no trial")
    line = (
        f"warning: {prose.fmt_count(len(missing | outside), 'stored artifact')} could not be "
        f"read from {reader.directory} ({'; '.join(parts)})"
    )
    if outside:
        line += (
            f", {len(outside)} of them left out: outside the artifact folder "
            "(a path or a symbolic link out of it)"
        )
    if missing:
        line += (
            f", {len(missing)} missing, truncated or not of their kind"
            if outside
            else ": missing, truncated or not of their kind"
        )
    return line + "; the report says so in its notes"


def _kind_part(kind: str, numbers: set[int]) -> str:
    shown = sorted(numbers)
    text = ", ".join(str(n) for n in shown[:SHOWN_TRIALS])
    if len(shown) > SHOWN_TRIALS:
        text += f" and {len(shown) - SHOWN_TRIALS} more"
    return f"{kind} of {'trial' if len(shown) == 1 else 'trials'} {text}"
