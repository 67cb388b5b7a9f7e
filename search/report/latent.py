"""Section 8, the latent space: the recommended configuration's representative run's latent
means on test digits (projected to 2-D) and digits decoded from its prior."""

from __future__ import annotations

from search import records as keys  # the stored names (search.records owns them)
from search.report.analysis import project_2d
from search.report.artifacts import ArtifactReader
from search.report.sections import LatentInfo, Recommendation
from search.report.trials import StudyRecords


def latent_info(
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
    # the run nearest the configuration's mean among those that stored a latent artifact
    order = [recommendation.representative or recommendation.number, *recommendation.numbers]
    runs = [records.trial(n) for n in dict.fromkeys(order)]
    trial = next((t for t in runs if t.dict_attr(keys.ARTIFACTS).get("latent")), runs[0])
    ids = trial.dict_attr(keys.ARTIFACTS)
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
