"""Study -> report context: the plain, testable data of every section. Nothing here draws.

`build_context(records, reader, importance, now)` is a pure function of the study's records,
its stored artifacts and the time it is given. Each section has its own module, which builds
its data and its sentences: `answer` (page one), `summary`, `pareto`, `reconstructions`,
`effects`, `bias_variance`, `diagnostics`, `latent`, `latent_use` and `reproducibility`. The
data shapes are in `sections`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from search.configurations import choose, pareto_front
from search.report import prose
from search.report.answer import answer_info
from search.report.artifacts import ArtifactReader
from search.report.bias_variance import bias_variance_info
from search.report.diagnostics import diagnostics_info
from search.report.effects import effects_info
from search.report.latent import latent_info
from search.report.latent_use import latent_use_info
from search.report.pareto import pareto_info
from search.report.reconstructions import reconstruction_info, shown_runs
from search.report.reproducibility import reproducibility_info
from search.report.sections import ImportanceInfo, ReportContext
from search.report.summary import budget_info, provenance, recommendation_info, summary_info
from search.report.trials import StudyRecords
from search.report.trust import trust_info
from search.report.unreadable import unreadable_warning


def build_context(
    records: StudyRecords,
    reader: ArtifactReader,
    importance: ImportanceInfo | None,
    now: datetime,
) -> ReportContext:
    """The report's data, section by section, from the study's records and stored artifacts.

    Trials are read as configurations (equal parameters, several seeds): the front, the
    recommendation, the effect charts and the hypervolume use each configuration's mean.
    `now` is when the report says it was generated.
    """
    configurations = records.configurations()
    front = pareto_front(configurations, records.maximize)
    choice = choose(front, records.maximize, configurations)
    recommendation = recommendation_info(records, choice, configurations)
    data = provenance(records.attrs)
    budget = budget_info(records)
    notes = []
    if not records.is_vae_search:
        notes.append(
            "This study was not written by vae-search: sections that need its records "
            "(train error, test metrics, artifacts, provenance) show what is available."
        )
    answer = answer_info(
        records,
        recommendation,
        choice.configuration if choice else None,
        front,
        recommendation.ties_text if recommendation else None,
        budget,
        data,
        reader,
    )
    reconstructions = reconstruction_info(records, front, configurations, reader)
    latent = latent_info(recommendation, records, reader)
    latent_use = latent_use_info(records, reader, front, configurations)
    if records.left_out:
        numbers = [t.number for t in records.left_out]
        shown = ", ".join(str(n) for n in numbers[:10]) + (", …" if len(numbers) > 10 else "")
        notes.append(
            f"{prose.fmt_count(len(numbers), 'completed trial')} left out of every section: "
            "stored values that are not finite (NaN or infinite) fit no front, mean or figure "
            f"({'trial' if len(numbers) == 1 else 'trials'} {shown})."
        )
    if reader.missing:
        notes.append(
            f"{prose.fmt_count(len(set(reader.missing)), 'artifact')} could not be read "
            "(missing, truncated or not of their kind) "
            f"from {reader.directory}."
        )
    if reader.outside:
        left_out = prose.fmt_count(len(set(reader.outside)), "stored artifact")
        notes.append(
            f"{left_out} left out: the stored id leads outside the artifact folder "
            f"{reader.directory} (a path or a symbolic link out of it), so it was not read."
        )
    warning = unreadable_warning(records, reader)
    if warning:  # one line on stderr for all of them; the notes above say it on the page
        logging.getLogger(__name__).warning("%s", warning)
    diagnostics = diagnostics_info(records, budget)
    return ReportContext(
        study_name=records.name,
        generated_at=now.strftime("%Y-%m-%d %H:%M UTC"),
        objectives=records.objectives,
        n_complete=len(records.complete),
        summary=summary_info(records, recommendation, data, budget),
        pareto=pareto_info(
            records, configurations, front, choice.configuration if choice else None, data
        ),
        reconstructions=reconstructions,
        effects=effects_info(records, configurations),
        bias_variance=bias_variance_info(records, shown_runs(records, front, None)),
        importance=importance or ImportanceInfo([], "Importance was not computed."),
        diagnostics=diagnostics,
        latent=latent,
        reproducibility=reproducibility_info(records),
        notes=notes,
        latent_use=latent_use,
        answer=answer,
        trust=trust_info(records, configurations, front, diagnostics.hypervolume),
    )
