"""Section 9, reproducibility: the recorded command lines, settings and seeds, the search
space, and the package versions of the runs beside those that wrote this report."""

from __future__ import annotations

import importlib.metadata
import platform
from collections import defaultdict
from typing import Any

from search import records as keys  # the stored names (search.records owns them)
from search.records import read_runs
from search.report.sections import ReproInfo, RunRow
from search.report.trials import StudyRecords, redact_url
from search.storage import redact_command
from search.terminal import bounded

REPORT_PACKAGES = ("vae-search", "optuna", "plotly", "kaleido", "weasyprint", "jinja2", "numpy")


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


def reproducibility_info(records: StudyRecords) -> ReproInfo:
    runs = []
    versions: dict[str, set[str]] = defaultdict(set)
    raw_runs = read_runs(records.attrs)
    for run in raw_runs if isinstance(raw_runs, list) else []:
        if not isinstance(run, dict):
            continue
        runs.append(
            RunRow(
                # studies recorded before commands were redacted may still hold a password
                # redacted first, then bounded: a cut must never split a password
                command=bounded(redact_command(str(run.get("command", "-")))),
                started=bounded(str(run.get("started", "-"))),
                host=bounded(str(run.get("host", "-"))),
                device=bounded(str(run.get("device", "-"))),
                storage=bounded(redact_url(str(run["storage"])) or "-")
                if run.get("storage")
                else "-",
            )
        )
        if isinstance(run.get("versions"), dict):
            for package, version in run["versions"].items():
                versions[str(package)].add(str(version))
    trial_seeds = sorted({s for t in records.trials if (s := t.int_attr(keys.SEED)) is not None})
    seeds = {"study seed": str(records.attrs.get(keys.STUDY_SEED, "not recorded"))}
    if trial_seeds:
        seeds["trial seeds"] = (
            f"{len(trial_seeds)} distinct, {trial_seeds[0]} to {trial_seeds[-1]}"
            if len(trial_seeds) > 1
            else str(trial_seeds[0])
        )
    settings = {"storage": records.storage_url or "not an RDB storage (URL unknown)"}
    for key in ("sampler", "artifacts_dir"):
        if records.attrs.get(key) is not None:
            settings[key] = bounded(str(records.attrs[key]))
    budget = keys.read_budget(records.attrs)
    if budget is not None:  # studies from before backends were recorded trained under TensorFlow
        settings["Keras backend"] = str(budget.get("backend", "tensorflow (not recorded)"))
    data = records.attrs.get(keys.DATA)
    if isinstance(data, dict) and data.get("sha256"):
        settings["data sha256"] = str(data["sha256"])
    fixed = records.attrs.get(keys.FIXED_PARAMS)
    return ReproInfo(
        runs=runs,
        versions={k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        report_versions=_report_versions(),
        seeds=seeds,
        search_space=_space_rows(records.search_space()),
        fixed_params=dict(fixed) if isinstance(fixed, dict) else {},
        settings=settings,
    )
