"""What a study records about itself and each run that worked on it: the search space, data,
budget, pruning rule, and per run the command, host, device, package versions and storage."""

from __future__ import annotations

import datetime
import platform
import shlex
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna

from search import records
from search import space as search_space
from search import storage as storage_module
from search.run.budget import study_budget
from search.run.options import RunOptions
from search.run.setup import METRIC_NAMES, pruner_config

VERSIONED_PACKAGES = (
    "vae-search",
    "tensorflow",
    "jax",
    "torch",
    "keras",
    "optuna",
    "numpy",
    "plotly",
    "weasyprint",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def record_study(
    study: optuna.Study,
    options: RunOptions,
    space: search_space.SearchSpace,
    provenance: dict[str, Any],
    epochs: int,
    url: str,
    artifacts_dir: Path,
) -> None:
    """Store what the study is (once) and append this run to its record of runs."""
    stored = records.study_attrs(study)
    study.set_metric_names(METRIC_NAMES)
    if records.CREATED_BY not in stored:
        records.write_study_record(
            study,
            search_space=search_space.describe_space(space),
            distributions=search_space.space_to_json(space),
            fixed_params={"predictor": options.predictor},
            data=provenance,
            sampler=options.sampler,
            seed=options.seed,
            artifacts_dir=str(artifacts_dir),
        )
    records.write_budget(study, study_budget(options, provenance))
    pruner = pruner_config(options, epochs)
    records.write_pruning_settings(
        study,
        {
            "enabled": options.pruning,
            "grace_epochs": pruner.grace_epochs,
            "eta": pruner.eta,
            "rungs": pruner.rungs,
            "noise_margin_sd": pruner.noise_margin,
            "envelope_min_complete": pruner.envelope_min_complete,
        },
    )
    records.append_run(
        study,
        stored,
        {
            "command": "python -m search "
            + " ".join(shlex.quote(a) for a in storage_module.redact_argv(options.argv)),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "device": run_device(options),
            "backend": options.backend,
            "versions": versions(),
            # absolute: a relative URL names another file from any other folder
            "storage": storage_module.redact_url(storage_module.absolute_url(url)),
        },
    )


def run_device(options: RunOptions) -> str:
    """The device(s) this run trains on, for the study's record of its runs.

    A `--workers`/`--gpus` parent only launches: it describes the placement from nvidia-smi
    and never imports TensorFlow (a CUDA context would take memory on every GPU, unused).
    """
    if options.workers == 1 and options.gpus is None:
        from search.training import configure_device

        return configure_device(options.mixed_precision, options.deterministic)
    from search.workers import describe_placement, plan_workers

    return describe_placement(*plan_workers(options.workers, options.gpus, options.workers_per_gpu))
