"""What the benchmarks share: the machine description, clocks, the results folder.

Every benchmark prints a small markdown report and writes it (and its raw numbers as JSON)
to `bench/results/`, with the machine it ran on, so numbers are never quoted without it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# TensorFlow's C++ start-up chatter hides the tables; set before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def clock() -> tuple[float, float]:
    """(wall seconds, process CPU seconds) now."""
    return time.perf_counter(), cpu_seconds()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(*, tensorflow: bool = True) -> str:
    """One sentence: CPU model, cores, load at the time of the call, library versions."""
    import numpy

    parts = [
        f"{cpu_model()}, {os.cpu_count()} logical cores",
        f"load average {os.getloadavg()[0]:.1f} when measured",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"NumPy {numpy.__version__}",
    ]
    if tensorflow:
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        parts += [
            f"TensorFlow {tf.__version__}",
            f"Keras {keras.__version__}",
            f"{len(gpus)} GPU(s)" if gpus else "no GPU",
        ]
    return ", ".join(parts)


SHARED_NOTE = (
    "Timings were taken on a shared, loaded machine (other agents ran test suites on the same "
    "2 cores at the same time), so wall-clock numbers are noisy; variants are interleaved and "
    "medians reported, and CPU-seconds (less sensitive to the load) are given beside them."
)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None
) -> str:
    """A GitHub markdown table; `align` holds 'l' or 'r' per column (default: left)."""
    align = align or ["l"] * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, report: str, data: dict[str, Any] | None = None) -> Path:
    """Print the report and write `bench/results/<name>.md` (and `<name>.json` with the data)."""
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(report.rstrip() + "\n")
    if data is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n")
    return path


def timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def duration_text(seconds: float) -> str:
    """A wall time as a person says it: `48 s`, `4 min 11 s`, `1 h 2 min`.

    The docs quote these strings as they stand in a results file, so every script that writes
    a time a page will quote formats it here, once.
    """
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
