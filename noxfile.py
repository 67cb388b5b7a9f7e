"""One entry point for what a person or CI runs: `nox -s tests|lint|typecheck|bench|docs|run`."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time

import nox

nox.options.sessions = ["tests"]  # lint and the type check run inside it
nox.options.reuse_existing_virtualenvs = True  # TensorFlow is large: install it once per machine
PYTHON = "3.11"

# Debian packages the tests need, and the file that shows each one is installed.
SYSTEM_PACKAGES = {
    "chromium": "/usr/bin/chromium",  # kaleido's static figures and the headless-browser test
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",  # the distributed tests' real server
    "fonts-dejavu-core": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # PDF text
    "poppler-utils": "/usr/bin/pdftoppm",  # renders PDF pages for a look
}


def install_system_packages(session: nox.Session, names: list[str]) -> None:
    """apt-get what is missing when we are root; otherwise say plainly what to install."""
    missing = [name for name in names if not glob.glob(SYSTEM_PACKAGES[name])]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
            external=True,
            env=env,
        )
    else:
        session.warn(f"missing system packages: sudo apt-get install {' '.join(missing)}")


LINTED = ["search", "tests", "bench", "noxfile.py"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """What CI runs: lint, the type check, then the test suite on the bundled MNIST subset
    (real Keras, Optuna, PostgreSQL, Chromium), printing the 15 slowest tests."""
    install_system_packages(session, list(SYSTEM_PACKAGES))
    session.install("-e", ".[dev]")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")
    # Test files run in parallel processes (one file stays in one process, so its fixtures are
    # shared): most tests wait on subprocesses and imports, so two cores give 1.7x.
    session.run(
        "pytest",
        "--numprocesses=auto",
        "--maxprocesses=4",
        "--dist=loadfile",
        "--durations=15",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


# Results that `nox -s bench` does not write: the quick start is timed on a fresh clone by
# `python bench/time_quickstart.py` (it runs `nox -s run` and the test suite itself).
# The GPU check (bench/gpu_check.py) writes its own: gpu.* on a GPU, backends_cpu.* with
# --cpu-real-sizes.
TIMED_APART = {
    "bench/results/quickstart.json",
    "bench/results/quickstart.md",
    "bench/results/gpu.json",
    "bench/results/gpu.md",
    "bench/results/backends_cpu.json",
    "bench/results/backends_cpu.md",
}


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks (not in CI): ratios against same-run baselines, written to bench/results/.

    Every `bench/bench_*.py` at its default size (each runs without arguments), or the scripts
    given after `--`. A full run must rewrite every report in bench/results/: a `.md` file that
    no script rewrote is a hand-made or orphaned result, and fails the session.
    """
    install_system_packages(session, ["chromium", "postgresql", "fonts-dejavu-core"])
    session.install("-e", ".[test,bench]")
    if not os.environ.get("OPTUNAHUB_REGISTRY"):
        session.warn(
            "OPTUNAHUB_REGISTRY is not set: the pruning benchmark leaves OptunaHub's pruner "
            "out (set it to a local checkout of optuna/optunahub-registry)"
        )
    scripts = session.posargs or sorted(glob.glob("bench/bench_*.py"))
    started = time.time()
    for script in scripts:
        session.run("python", script)
    session.run("python", "bench/make_docs.py")  # docs/benchmarks.md and the README's times
    if session.posargs:
        return
    stale = sorted(
        p
        for p in glob.glob("bench/results/*")
        if os.path.getmtime(p) < started and p not in TIMED_APART
    )
    # Recorded inputs (training curves that a replay reads) are rewritten only when re-recorded.
    kept = [p for p in stale if not p.endswith(".md")]
    if kept:
        session.log(f"kept, not rewritten (inputs or data of a report): {', '.join(kept)}")
    if len(kept) < len(stale):
        session.error(f"no script rewrote: {', '.join(p for p in stale if p.endswith('.md'))}")


@nox.session(name="gpu-check", python=PYTHON)
def gpu_check(session: nox.Session) -> None:
    """The GPU check (docs/gpu.md): devices, images/s, SSIM on the device, trials/hour, under
    8 minutes on one GPU; tiny sizes on a CPU. Options after `--`, e.g. `-- --backend jax`."""
    session.install("-e", ".[test]")  # the test extra brings JAX
    session.run("python", "bench/gpu_check.py", *session.posargs)


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """docs/benchmarks.md and the README's measured times, rewritten from bench/results/ (the
    standard library only: nothing to install)."""
    session.run(sys.executable, "bench/make_docs.py", *session.posargs, external=True)


# `nox -s run` without arguments (README, step 1). The quick preset at 4 epochs: 6 designed
# trials (k = 2, 8, 16, two seeds each), 10 sampled ones, then the front confirmed to 3 seeds.
MAIN_JOB = [
    "--preset",
    "quick",
    "--epochs",
    "4",
    "--sweep",
    "latent_dim=2,8,16",
    "--repeats",
    "2",
    "--trials",
    "16",
]


@nox.session(python=PYTHON)
def run(session: nox.Session) -> None:
    """The main job on this machine: a quick study (bundled data when offline) and its report.

    Sized to finish in about 10 minutes on a 2-core CPU with every report section filled: a
    latent-dimension sweep repeated under two seeds (the measured seed spread), sampled trials
    (enough complete ones for parameter importance) and confirmation runs of the front.
    Pass other `run` options after `--`, e.g. `nox -s run -- --preset full --trials 200
    --study gpu` (a study keeps one budget, so another preset needs another study).
    """
    install_system_packages(session, ["chromium", "fonts-dejavu-core"])
    session.install("-e", ".")
    args = session.posargs or MAIN_JOB
    session.run("python", "-m", "search", "run", *args)
