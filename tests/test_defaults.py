"""One source of defaults: the CLI's defaults and choices are search/defaults.py's, and so are
the library's (RunOptions, TrainConfig, the model)."""

from __future__ import annotations

import dataclasses

from search import defaults
from search.cli import build_parser
from search.model import DEFAULTS as MODEL_DEFAULTS
from search.model import LOSSES
from search.run.options import RunOptions


def _choices(parser_args: list[str], dest: str) -> list[str]:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[parser_args[0]]  # type: ignore[union-attr]
    return next(a.choices for a in sub._actions if a.dest == dest)


def test_run_options_parsed_from_an_empty_command_line_equal_the_library_defaults() -> None:
    args = vars(build_parser().parse_args(["run"]))
    library = RunOptions()
    compared = 0
    for field in dataclasses.fields(RunOptions):
        # --backend's default is $KERAS_BACKEND, else the library's, resolved once parsed
        if field.name in args and field.name not in ("argv", "workers", "backend"):
            assert args[field.name] == getattr(library, field.name), field.name
            compared += 1
    assert compared >= 20  # nearly every option has a counterpart in RunOptions
    assert args["backend"] is None and library.backend == defaults.BACKEND
    assert library.study == defaults.STUDY_NAME and library.preset == defaults.PRESET


def test_run_choices_come_from_the_defaults() -> None:
    assert _choices(["run"], "preset") == list(defaults.PRESETS)
    assert _choices(["run"], "sampler") == list(defaults.SAMPLERS)
    assert _choices(["run"], "keep_models") == list(defaults.KEEP_MODELS)
    assert _choices(["train"], "loss") == list(defaults.LOSS_CHOICES) == list(LOSSES)


def test_train_defaults_are_the_model_and_training_defaults() -> None:
    from search.training import TrainConfig

    args = build_parser().parse_args(["train"])
    assert (args.latent_dim, args.layers, args.filters, args.dense_units, args.loss) == (
        MODEL_DEFAULTS["latent_dim"],
        MODEL_DEFAULTS["n_layers"],
        MODEL_DEFAULTS["filters"],
        MODEL_DEFAULTS["dense_units"],
        MODEL_DEFAULTS["loss"],
    )
    assert args.beta == MODEL_DEFAULTS["beta"]
    assert args.batch_size == TrainConfig().batch_size == defaults.TRAIN_BATCH_SIZE
    assert TrainConfig().epochs == defaults.TRAIN_EPOCHS
    assert {k: MODEL_DEFAULTS[k] for k in defaults.SWEEP_BASELINE} == defaults.SWEEP_BASELINE


def test_report_and_dashboard_defaults() -> None:
    report = build_parser().parse_args(["report"])
    assert report.format.split(",") == list(defaults.REPORT_FORMATS)
    assert report.study == defaults.STUDY_NAME
    dashboard = build_parser().parse_args(["dashboard"])
    assert (dashboard.host, dashboard.port) == (defaults.DASHBOARD_HOST, defaults.DASHBOARD_PORT)


def test_help_states_the_defaults_it_uses() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert f"default {defaults.PRESET}" in text.replace("\n", " ").replace("  ", " ")
    assert f"default {defaults.TRIALS}" in " ".join(text.split())
