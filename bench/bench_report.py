"""Benchmark: report generation for a 200-trial synthetic study (no training). Not run in CI.

    python bench/bench_report.py [--trials 200] [--repeats 1]

Builds the study once (create_trial + stored grid, latent and prior-sample artifacts, see
tests/report_fixtures.py), then times `write_report` in fresh child processes, so imports and
the Chromium start are counted and each peak RSS is that run's own: HTML only, PDF only, both.
Peak memory is the child Python process's ru_maxrss; Chromium's processes are separate and
reported as the largest one the child reaped. Target: HTML and PDF together within 10 s on an
idle 2-core machine; the load average is recorded before and after, since on a busy machine
wall time is mostly waiting for a core. Writes bench/results/report.md and report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import timestamp, write_result

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 10.0  # HTML + PDF of a 200-trial study on an idle 2-core machine

CHILD = r"""
import json, resource, sys, time, warnings
from pathlib import Path
t0 = time.perf_counter()
warnings.simplefilter("ignore")
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from search.report import write_report
study = optuna.load_study(study_name=sys.argv[1], storage=sys.argv[2])
out = write_report(study, Path(sys.argv[3]), formats=sys.argv[4].split(","))
wall = time.perf_counter() - t0
cpu = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "wall_s": wall,
    "cpu_s": cpu.ru_utime + cpu.ru_stime,
    "child_cpu_s": kids.ru_utime + kids.ru_stime,
    "peak_rss_mib": cpu.ru_maxrss / 1024,
    "child_peak_rss_mib": kids.ru_maxrss / 1024,
    "sizes": {k: Path(v).stat().st_size for k, v in out.items()},
}))
"""


def build(directory: Path, n_trials: int) -> tuple[str, str, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import optuna
    from report_fixtures import build_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    fixture = build_study(
        directory, name="bench-report", n_trials=n_trials, n_pruned=n_trials // 7, n_failed=4
    )
    return fixture.study.study_name, fixture.storage_url, time.perf_counter() - start


def run_child(name: str, storage: str, out_dir: Path, formats: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, name, storage, str(out_dir), formats],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        name, storage, build_s = build(Path(tmp) / "study", args.trials)
        print(f"built a {args.trials}-trial study with artifacts in {build_s:.1f} s", flush=True)
        rows = []
        for formats in ("html", "pdf", "html,pdf"):
            runs = [
                run_child(name, storage, Path(tmp) / f"out-{i}", formats)
                for i in range(args.repeats)
            ]
            best = min(runs, key=lambda r: float(r["wall_s"]))
            rows.append((formats, best))
            print(formats, json.dumps(best), flush=True)
    load_after = os.getloadavg()[0]
    lines = [
        f"# Report benchmark: {args.trials}-trial synthetic study (bench/bench_report.py)",
        "",
        f"Run {timestamp()}. Machine: {machine()}. 1-minute load average {load_before:.1f} "
        f"before the runs and {load_after:.1f} after them.",
        f"Best of {args.repeats} run(s) per row; each run is a fresh process (imports, study "
        "loading and the Chromium start included). Study built by "
        f"`tests/report_fixtures.build_study` in {build_s:.1f} s (not timed below).",
        "",
        "| formats | wall time | CPU Python | CPU Chromium | peak RSS Python "
        "| peak RSS largest Chromium process | output size |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for formats, run in rows:
        sizes = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in run["sizes"].items())
        lines.append(
            f"| {formats} | {run['wall_s']:.1f} s | {run['cpu_s']:.1f} s | "
            f"{run['child_cpu_s']:.1f} s | {run['peak_rss_mib']:.0f} MiB | "
            f"{run['child_peak_rss_mib']:.0f} MiB | {sizes} |"
        )
    both = rows[-1][1]
    wall, cpu = float(both["wall_s"]), float(both["cpu_s"]) + float(both["child_cpu_s"])
    met = "met" if wall <= TARGET_S else "not met"
    # The runs themselves raise the load average, so only the value before them tells idle.
    idle = load_before < 0.5
    lines += [
        "",
        f"**HTML and PDF together: {wall:.1f} s wall = {wall / TARGET_S:.2f}x the target "
        f"(<= {TARGET_S:.0f} s: {met})**; {cpu:.1f} s of CPU (Python and Chromium). "
        + (
            f"The machine was idle before the runs (load average {load_before:.1f} < 0.5; the "
            "value after them counts the benchmark's own processes)."
            if idle
            else f"The machine was not idle (load average {load_before:.1f} before the runs, "
            "0.5 or more), so the wall time includes waiting for a core; CPU time does not "
            "depend on that load."
        ),
    ]
    write_result(
        "report",
        "\n".join(lines),
        {
            "trials": args.trials,
            "repeats": args.repeats,
            "load_before": load_before,
            "load_after": load_after,
            "target_s": TARGET_S,
            "rows": {formats: run for formats, run in rows},
        },
    )


if __name__ == "__main__":
    main()
