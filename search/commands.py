"""The commands' bodies: run (then its report), train one configuration, report, dashboard,
list studies, export. The study itself is run by search/run/; the report is search/report/."""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import shlex
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from search import defaults
from search import storage as storage_module
from search.errors import UsageError
from search.paths import check_output_folder, study_artifacts_dir
from search.records import study_attrs
from search.run.budget import study_options
from search.summaries import left_out_line, non_finite
from search.terminal import shown

if TYPE_CHECKING:
    from search.run.options import RunOptions

# What `train --save` writes (search.outputs.write_trial_outputs).
TRAIN_OUTPUT_FILES = ("grid.png", "latent.npz", "prior_samples.png", "model.weights.h5")


def run_command(options: RunOptions) -> int:
    """Run (or resume) the study, then write its report (or, with --no-report, only the
    dashboard note): the run itself never imports the report.

    Stop signals are ours from the first line to the last (search/run/process.py): one
    during start-up stops before any trial, one during the report leaves the study whole
    and no report file half-written; either says so in one line."""
    from search.run.driver import run
    from search.stopping import STOP, exit_code_of_stop, stopping_on_signals

    with stopping_on_signals():
        where = "before any trial started; nothing was trained: run the same command to go on"
        try:
            outcome = run(options)
            if outcome.wants_report:
                assert outcome.study is not None
                where = (
                    "while the report was written; the study is stored whole and no report "
                    "file is half-written; write the report with: python -m search report "
                    + shlex.join(study_options(options))
                )
                _report_after_run(options, outcome.study)
            return outcome.code
        except KeyboardInterrupt:
            pass
        except Exception:
            if STOP.signum is None:
                raise
            # An error raised by a library the signal cut short (half an import, say) is
            # the interruption, not a bug.
        print(f"interrupted {where}", file=sys.stderr)
        return exit_code_of_stop()


def _report_after_run(options: RunOptions, study: optuna.Study) -> None:
    from search.run.driver import report_dir

    out_dir = report_dir(options)
    artifacts = study_artifacts_dir(study_attrs(study), default=out_dir / "artifacts")
    if options.report:
        from search.report import write_report

        paths = write_report(
            study, out_dir, formats=defaults.REPORT_FORMATS, artifact_store_dir=artifacts
        )
        for fmt, path in paths.items():
            print(f"report ({fmt}): {path}")
    else:
        from search.report import write_story_without_report

        write_story_without_report(study, artifacts)


def train_command(args: argparse.Namespace) -> int:
    """Train one configuration and print a small table of its measurements."""
    from search.data import load_mnist

    # Where the results go is checked before minutes of training, and nothing is created yet.
    save_dir = (
        check_output_folder(args.save, "--save", files=TRAIN_OUTPUT_FILES)
        if args.save is not None
        else None
    )
    # Data first: a bad file is reported before TensorFlow loads (and prints its start-up lines).
    data = load_mnist(
        args.data, seed=args.seed, subset=args.subset, extra_unlabeled=args.extra_unlabeled
    )
    from search.model import check_params
    from search.training import TrainConfig, TrainingFailed, train_vae

    params = check_params(
        {
            "latent_dim": args.latent_dim,
            "n_layers": args.layers,
            "filters": args.filters,
            "dense_units": args.dense_units,
            "loss": args.loss,
            "beta": args.beta,
            "predictor": args.predictor,
        }
    )
    config = TrainConfig(
        epochs=args.epochs or defaults.TRAIN_EPOCHS,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        deterministic=args.deterministic,
    )
    print(f"data: {data.provenance['source']} {data.provenance['counts']}", file=sys.stderr)
    try:
        result = train_vae(params, data, config)
    except TrainingFailed as failure:
        print(f"error: training failed: {failure.reason}", file=sys.stderr)
        return 1
    rows = [
        ("validation SSIM", f"{result.val_ssim:.4f}"),
        ("validation MSE", f"{result.val_mse:.5f}"),
        ("train SSIM", f"{result.train_ssim:.4f}"),
        ("train MSE", f"{result.train_mse:.5f}"),
        ("test SSIM", f"{result.test_ssim:.4f}"),
        ("test MSE", f"{result.test_mse:.5f}"),
        ("epochs", str(result.epochs_run)),
        ("parameters", f"{result.n_params:,}"),
        ("time", f"{result.wall_time_s:.1f} s"),
        ("images/s", f"{result.images_per_s:.0f}"),
        ("device", result.device),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if save_dir is not None:
        from search.outputs import write_trial_outputs

        assert result.model is not None
        paths = write_trial_outputs(result.model, data, save_dir, keep_model=True, seed=args.seed)
        for name, path in paths.items():
            print(f"{name:<{width}}  {path}")
    return 0


def _load_study(study_name: str, storage_url: str | None) -> tuple[optuna.Study, str]:
    storage_module.validate_study_name(study_name)
    url = storage_url or storage_module.default_storage_url(study_name)
    storage = storage_module.open_storage(url, must_exist=True)
    try:
        return optuna.load_study(study_name=study_name, storage=storage), url
    except KeyError:
        raise UsageError(
            f"no study named {study_name!r} in {storage_module.redact_url(url)}"
        ) from None


def _artifacts_dir(args: argparse.Namespace, study: optuna.Study, url: str) -> Path:
    """The study's artifact folder, for reading: resolved, never created."""
    if args.artifacts:
        return Path(args.artifacts).absolute()
    found = study_artifacts_dir(study_attrs(study), url, f"studies/{study.study_name}/artifacts")
    assert found is not None  # a default is given
    return found


def report_command(args: argparse.Namespace) -> int:
    from search.report import FORMATS, write_report

    storage_module.validate_study_name(args.study)
    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    if not formats or set(formats) - set(FORMATS):
        raise UsageError(f"--format {args.format!r}: use html, pdf or html,pdf")
    out_dir = check_output_folder(
        args.out or Path(defaults.STUDIES_DIR) / args.study,
        "--out" if args.out else "the report folder",
        files=[f"report.{fmt}" for fmt in FORMATS],
    )
    study, url = _load_study(args.study, args.storage)
    paths = write_report(
        study, out_dir, formats=formats, artifact_store_dir=_artifacts_dir(args, study, url)
    )
    for fmt, path in paths.items():
        print(f"report ({fmt}): {path}")
    return 0


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's request handler without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


def dashboard_command(args: argparse.Namespace) -> int:
    """optuna-dashboard on this study's storage, with its artifact store so grids show.

    The server's socket is bound before anything is printed, so a busy port or a bad host is
    one error line; the artifact folder is read where it is, never created.
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    if not args.host.strip():
        raise UsageError("--host is empty: give an address such as 127.0.0.1")
    study, url = _load_study(args.study, args.storage)
    from search.dashboard_view import FiniteView

    app = optuna_dashboard.wsgi(
        FiniteView(study._storage),  # a NaN trial value would make every study page a 500
        artifact_store=FileSystemArtifactStore(_artifacts_dir(args, study, url)),
    )
    try:
        server = make_server(
            args.host,
            args.port,
            app,
            server_class=_IPv6Server if ":" in args.host else WSGIServer,
            handler_class=_QuietHandler,
        )
    except (OSError, UnicodeError) as err:  # UnicodeError: a host name IDNA cannot encode
        reason = getattr(err, "strerror", None) or str(err)
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(  # the bound port: with --port 0 the system chose it, and this line says which
        f"optuna-dashboard for {storage_module.redact_url(url)} at "
        f"http://{host}:{server.server_port}/ (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def studies_command(args: argparse.Namespace) -> int:
    """Every study in the storage (or in studies/*.db|*.log) with trial counts by state."""
    urls = (
        [args.storage]
        if args.storage
        else [f"sqlite:///{p}" for p in sorted(glob.glob("studies/*.db"))]
        + [f"journal:///{p}" for p in sorted(glob.glob("studies/*.log"))]
    )
    if not urls:
        # on stderr, so `--json` still prints a plain [] for scripts, and a person sees why
        where = Path(defaults.STUDIES_DIR).resolve()
        print(
            f"no studies under {where} (run from the folder that holds studies/, or pass "
            "--storage URL)",
            file=sys.stderr,
        )
    if args.json:
        from search.summaries import storage_summaries

        summaries = []
        for url in urls:
            try:
                summaries += storage_summaries(url)
            except UsageError as err:
                if args.storage:
                    raise
                print(f"skipped: {shown(err, sys.stderr)}", file=sys.stderr)
        if urls and not summaries:
            print(f"no study in {_storages(urls)}", file=sys.stderr)
        for entry in summaries:
            if entry["non_finite_trials"]:
                name = shown(entry["name"], sys.stderr)
                print(left_out_line(name, entry["non_finite_trials"]), file=sys.stderr)
        print(json.dumps(summaries, indent=2))
        return 0
    if not urls:
        return 0
    states = [s for s in optuna.trial.TrialState]
    print(f"{'study':<30} {'storage':<40} " + " ".join(f"{s.name.lower():>8}" for s in states))
    listed = 0
    for url in urls:
        try:
            storage = storage_module.open_storage(url, must_exist=True)
        except UsageError as err:
            if args.storage:  # the one storage asked for
                raise
            print(f"skipped: {shown(err, sys.stderr)}", file=sys.stderr)  # a stray file
            continue
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            listed += 1
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            counts = {s: 0 for s in states}
            trials = study.get_trials(deepcopy=False)
            for trial in trials:
                counts[trial.state] += 1
            print(
                f"{shown(summary.study_name):<30} {shown(storage_module.redact_url(url)):<40} "
                + " ".join(f"{counts[s]:>8}" for s in states)
            )
            if left_out := non_finite(trials):
                name = shown(summary.study_name, sys.stderr)
                print(left_out_line(name, left_out), file=sys.stderr)
    if not listed:
        print(f"no study in {_storages(urls)}", file=sys.stderr)
    return 0


def _storages(urls: list[str]) -> str:
    """The storages looked in, for the `no study in ...` line (absolute, passwords hidden)."""
    return ", ".join(storage_module.redact_url(storage_module.absolute_url(u)) for u in urls)


def export_command(args: argparse.Namespace) -> int:
    """The chosen model as plain Keras files (search/export.py)."""
    from search.export import export_model

    out_dir = check_output_folder(
        args.out, "--out", files=("encoder.keras", "decoder.keras", "config.json")
    )
    study, url = _load_study(args.study, args.storage)
    config = export_model(
        study, out_dir, _artifacts_dir(args, study, url), url, trial_number=args.trial
    )
    print(
        f"exported trial {config['trial']} ({config['weights']} weights) to {args.out}: "
        "encoder.keras, decoder.keras, config.json"
    )
    return 0
