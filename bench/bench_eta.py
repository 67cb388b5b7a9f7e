"""How believable the ETA is: the calibration's estimate of a trial against the trial itself.

On this device, for each preset: `search.run.eta.calibrate` (the baseline model's start, a few
timed training steps and its scoring, what a CPU run of the full preset prints before its
first trial), then a real `train_vae` of the same baseline model under the preset's training
configuration, timed end to end. Rounds are interleaved (calibrate quick, calibrate full,
train quick, train full) and repeated; medians reported. The full preset runs `--epochs E`
(default 2) on the bundled data so that this stays short on a CPU: the estimate scales by
steps, which the ratio checks.

Usage: python bench/bench_eta.py [--rounds 2] [--full-epochs 2]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import machine, markdown_table, median, timestamp, write_result

from search import defaults
from search.data import load_mnist
from search.run import eta, setup
from search.run.options import RunOptions
from search.training import train_vae

PRESETS = ("quick", "full")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--full-epochs", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    epochs = {"quick": defaults.PRESETS["quick"].epochs, "full": args.full_epochs}
    data = {
        name: load_mnist("bundled", seed=0, subset=defaults.PRESETS[name].subset)
        for name in PRESETS
    }
    rows: dict[str, dict[str, list[float]]] = {
        p: {"calibration_s": [], "estimate_s": [], "measured_s": []} for p in PRESETS
    }
    for _ in range(args.rounds):
        for name in PRESETS:
            t0 = time.perf_counter()
            (cost,) = eta.calibrate((name,), data[name], {name: epochs[name]})
            rows[name]["calibration_s"].append(time.perf_counter() - t0)
            rows[name]["estimate_s"].append(cost.per_trial)
        for name in PRESETS:
            config = setup.training_config(RunOptions(preset=name, epochs=epochs[name]), 0)
            t0 = time.perf_counter()
            train_vae(dict(defaults.MODEL), data[name], config)
            rows[name]["measured_s"].append(time.perf_counter() - t0)

    table, summary = [], {}
    for name in PRESETS:
        values = {key: median(v) for key, v in rows[name].items()}
        ratio = values["estimate_s"] / values["measured_s"]
        summary[name] = {**values, "ratio": ratio, "epochs": epochs[name], "raw": rows[name]}
        table.append(
            [
                f"{name} ({epochs[name]} epochs, {len(data[name].train)} training images)",
                f"{values['calibration_s']:.1f} s",
                f"{values['estimate_s']:.1f} s",
                f"{values['measured_s']:.1f} s",
                f"{ratio:.2f}x",
            ]
        )
    command = "python bench/bench_eta.py " + " ".join(sys.argv[1:])
    elapsed = time.perf_counter() - started
    worst = max(abs(summary[p]["ratio"] - 1) for p in PRESETS)
    report = "\n".join(
        [
            "# The time estimate: calibration against a real trial (bench/bench_eta.py)",
            "",
            f"Written {timestamp()} by `{command}` in {elapsed:.0f} s; {machine()}.",
            "",
            f"Medians of {args.rounds} interleaved rounds. *Calibration*: what "
            "`search.run.eta.calibrate` took (a CPU run of the full preset pays it once, "
            "before its first trial). *Estimate*: the trial it predicts for the baseline model "
            "(start, training steps, scoring). *Measured*: `train_vae` of that model under the "
            "preset's training configuration, end to end.",
            "",
            markdown_table(
                ["preset", "calibration", "estimate", "measured", "estimate / measured"],
                table,
                ["l", "r", "r", "r", "r"],
            ),
            "",
            f"**Estimate / measured: quick {summary['quick']['ratio']:.2f}x, full "
            f"{summary['full']['ratio']:.2f}x (furthest from 1: {worst:.2f}); calibration took "
            f"{summary['quick']['calibration_s'] + summary['full']['calibration_s']:.1f} s for "
            "both presets.** The baseline model stands for the search space; a sampled model "
            "larger than it trains slower, which the measured seconds per trial after the first "
            "finished trial take over.",
        ]
    )
    write_result(
        "eta",
        report,
        {"written": timestamp(), "command": command, "machine": machine(), "presets": summary},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
