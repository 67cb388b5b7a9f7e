"""Time the README's quick start on a fresh clone: `nox -s run` and `nox -s tests`.

    python bench/time_quickstart.py                  # nox -s run
    python bench/time_quickstart.py --tests not-slow # nox -s tests -- -m "not slow" as well
    python bench/time_quickstart.py --tests all --no-run   # only the whole suite

The repository (its committed HEAD) is cloned into a temporary folder and each command runs
there as a new user would type it, in two timed steps: nox's set-up (`--install-only`: the
virtualenv and every pip install) and the command itself (`-R`: the same session, nothing
installed again). The machine's 1-minute load average is recorded before and after each step,
since a loaded machine stretches every wall time. Results go to bench/results/quickstart.json
and .md; a command not timed this time keeps its earlier entry (with its own date), so the
suite and the main job can be timed on different occasions. The README and
docs/benchmarks.md quote these files through bench/make_docs.py, never by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, RESULTS, cpu_model, duration_text, markdown_table, write_result

# What each timed command is called in the results, and the nox arguments it is.
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "run": ("nox -s run", ["-s", "run"]),
    "tests-not-slow": ('nox -s tests -- -m "not slow"', ["-s", "tests", "--", "-m", "not slow"]),
    "tests-all": ("nox -s tests", ["-s", "tests"]),
}
# Lines a quiet run must not print (issue 20): Keras' download notice and logging's raw
# `LEVEL:logger:` prefix.
DOWNLOAD_LINE = "Downloading data from"
RAW_LOGGING = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:")
PYTEST_SUMMARY = re.compile(r"=+ (.*\b(passed|failed|error)\b.*) in [\d.]+s")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def user_environment() -> dict[str, str]:
    """The caller's environment less what only this project's own tooling sets, so the clone
    runs as it would in a new user's shell."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL", "VAE_SEARCH_STORAGE"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def timed(argv: list[str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run one step; its wall seconds, exit code, the load around it, and what it printed."""
    before = load_average()
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=user_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        code, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as expired:
        raw = expired.stdout or ""
        code = None
        output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "exit_code": code,
        "load_before": before,
        "load_after": load_average(),
        "output": output,
    }


def printed_lines(output: str) -> list[str]:
    """What the command itself printed: the output without nox's own `nox > ` lines."""
    return [line for line in output.splitlines() if not line.startswith("nox > ")]


def time_command(name: str, clone: Path, timeout: float) -> dict[str, Any]:
    typed, nox_args = COMMANDS[name]
    nox = [sys.executable, "-m", "nox"]
    session = nox_args[: nox_args.index("--")] if "--" in nox_args else nox_args
    print(f"{typed}: set-up (nox {' '.join(session)} --install-only) ...", flush=True)
    setup = timed([*nox, *session, "--install-only"], clone, timeout)
    print(f"  {duration_text(setup['seconds'])}, exit {setup['exit_code']}", flush=True)
    print(f"{typed}: the command (nox -R {' '.join(nox_args)}) ...", flush=True)
    job = timed([*nox, "-R", *nox_args], clone, timeout)
    print(f"  {duration_text(job['seconds'])}, exit {job['exit_code']}", flush=True)
    lines = printed_lines(job.pop("output"))
    setup_lines = printed_lines(setup.pop("output"))
    entry: dict[str, Any] = {
        "command": typed,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "setup": setup,
        "job": job,
        "download_lines": sum(DOWNLOAD_LINE in line for line in lines),
        "raw_logging_lines": sum(bool(RAW_LOGGING.match(line)) for line in lines),
    }
    if setup["exit_code"] != 0:
        entry["setup_tail"] = setup_lines[-30:]
    if name == "run":
        entry["printed"] = lines[-200:]  # the whole output of a normal run, for the README
    else:
        summaries = [m.group(1) for line in lines if (m := PYTEST_SUMMARY.search(line))]
        entry["pytest_summary"] = summaries[-1] if summaries else None
        entry["tail"] = lines[-30:]
    return entry


def report(data: dict[str, Any]) -> str:
    rows = []
    for name in COMMANDS:
        entry = data["commands"].get(name)
        if entry is None:
            continue
        for step, label in (("setup", "set-up (virtualenv, pip install)"), ("job", "command")):
            part = entry[step]
            rows.append(
                [
                    f"`{entry['command']}`",
                    label,
                    duration_text(part["seconds"]),
                    f"{part['load_before']:.1f} / {part['load_after']:.1f}",
                    "timed out" if part["exit_code"] is None else part["exit_code"],
                    entry["when"],
                ]
            )
    table = markdown_table(
        ["command", "step", "wall time", "load average before / after", "exit code", "when"],
        rows,
        ["l", "l", "r", "r", "r", "l"],
    )
    notes = []
    for name in COMMANDS:
        entry = data["commands"].get(name)
        if entry is None:
            continue
        setup, job = entry["setup"], entry["job"]
        outcome = "" if job["exit_code"] == 0 else f", exit code {job['exit_code']}"
        notes.append(
            f"**`{entry['command']}`: {duration_text(job['seconds'])} after "
            f"{duration_text(setup['seconds'])} of set-up{outcome} (load average "
            f"{job['load_before']:.1f} before the command, {job['load_after']:.1f} after).**"
        )
        if entry.get("pytest_summary"):
            notes.append(f"pytest: {entry['pytest_summary']}.")
        if name == "run":
            notes.append(
                f"It printed {len(entry['printed'])} lines of its own; `{DOWNLOAD_LINE} ...` "
                f"lines: {entry['download_lines']}; lines with a raw `LEVEL:logger:` prefix: "
                f"{entry['raw_logging_lines']}."
            )
    return "\n".join(
        [
            "# Quick start on a fresh clone (bench/time_quickstart.py)",
            "",
            f"Machine: {data['machine']}; niceness {data.get('niceness', 0)}. Each command ran "
            "in a fresh `git clone` of the repository, in two timed steps: nox's set-up "
            "(`--install-only`) and the command itself (`nox -R ...`, nothing installed "
            "again). The 1-minute load average beside each time says how busy the machine was: "
            "on a shared machine every wall time includes waiting for a core.",
            "",
            table,
            "",
            "\n\n".join(notes),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="do not time `nox -s run`")
    parser.add_argument(
        "--tests",
        choices=["none", "not-slow", "all"],
        default="none",
        help='time `nox -s tests -- -m "not slow"` (not-slow) or the whole suite (all)',
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    parser.add_argument("--keep", action="store_true", help="keep the clone (say where)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="time nothing: rewrite quickstart.md from quickstart.json (after a change here)",
    )
    args = parser.parse_args()
    path = RESULTS / "quickstart.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"commands": {}}
    if args.report_only:
        write_result("quickstart", report(data))
        return

    names = ([] if args.no_run else ["run"]) + (
        [] if args.tests == "none" else [f"tests-{args.tests}"]
    )
    if not names:
        parser.error("nothing to time: drop --no-run or pass --tests")

    data["machine"] = f"{cpu_model()}, {os.cpu_count()} logical cores"
    data["niceness"] = os.nice(0)  # a `nice`d timing waits longer for a core on a busy machine
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()

    workdir = Path(tempfile.mkdtemp(prefix="vae-search-quickstart-"))
    clone = workdir / "vae-search"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        for name in names:
            entry = time_command(name, clone, args.timeout)
            entry["commit"] = commit
            data["commands"][name] = entry
            # Written after each command, so a long second one cannot lose the first.
            write_result("quickstart", report(data), data)
    finally:
        if args.keep:
            print(f"the clone is kept in {clone}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
