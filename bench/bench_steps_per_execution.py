"""What `steps_per_execution` (batches per call into TensorFlow) buys, measured on this CPU.

Keras 3 calls the compiled train step once per `steps_per_execution` batches; each call
returns the logs to Python, and train_vae's per-batch NaN check reads the loss from them, so
the host waits for the device once per call. On a fast GPU a step of these small VAEs takes
about as long as that round trip, so the GPU idles between steps; on a CPU the step itself
dominates. No GPU was available: this measures the CPU side only.

Two models, each trained by `train_vae` for a few epochs per variant, variants interleaved
round by round (the machine is shared; the load swings): the smallest model of the search
space, whose step costs little more than the call itself (the overhead-bound case, the
nearest a CPU gets to a fast GPU), and the default model (compute-bound). An epoch is timed
from one `on_epoch` call of train_vae to the next (wall and process CPU seconds: the epoch and
the scoring of a 64-image validation subset), so the first epoch (tracing) is left out. The
ratio is baseline (steps_per_execution 1) epoch time / variant epoch time, median over the
rounds of the same run; by CPU seconds it is much less sensitive to the load.

Usage: python bench/bench_steps_per_execution.py [--images 2048] [--rounds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

from common import SHARED_NOTE, clock, machine, markdown_table, median, timestamp, write_result

MODELS: dict[str, dict[str, Any]] = {
    "smallest (k=2, 1 conv of 8, dense 16)": {
        "latent_dim": 2,
        "n_layers": 1,
        "filters": 8,
        "dense_units": 16,
    },
    "default (k=8, 2 convs of 32, dense 64)": {},
}
STEPS = (1, 4, 16)
BATCH = 64  # the smoke and quick presets' batch size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training (>= 2)")
    args = parser.parse_args()

    from search.data import load_mnist
    from search.training import TrainConfig, train_vae

    started = time.perf_counter()
    data = load_mnist("bundled", seed=0, subset=args.images)
    described = machine()
    # median steady-epoch (wall, CPU) seconds per (model, steps), one entry per round
    wall_s: dict[tuple[str, int], list[float]] = {}
    cpu_s: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for model, params in MODELS.items():
            for steps in STEPS:
                config = TrainConfig(
                    epochs=args.epochs,
                    batch_size=BATCH,
                    validation_subset=64,
                    train_eval_subset=64,
                    test_eval_subset=64,
                    steps_per_execution=steps,
                )
                marks: list[tuple[float, float]] = []
                train_vae(params, data, config, on_epoch=lambda _r, m=marks: m.append(clock()))
                epochs = list(itertools.pairwise(marks))
                wall_s.setdefault((model, steps), []).append(
                    median([b[0] - a[0] for a, b in epochs])
                )
                cpu_s.setdefault((model, steps), []).append(
                    median([b[1] - a[1] for a, b in epochs])
                )

    batches = -(-len(data.train) // BATCH)
    rows = []
    data_out: dict[str, Any] = {"images": len(data.train), "batch": BATCH, "results": []}
    for model in MODELS:
        for steps in STEPS:
            wall, cpu = wall_s[(model, steps)], cpu_s[(model, steps)]
            by_wall = median([b / m for b, m in zip(wall_s[(model, 1)], wall, strict=True)])
            by_cpu = median([b / m for b, m in zip(cpu_s[(model, 1)], cpu, strict=True)])
            rows.append(
                [
                    model,
                    steps,
                    f"{1000 * median(wall) / batches:.2f}",
                    f"{1000 * median(cpu) / batches:.2f}",
                    "1.00x" if steps == 1 else f"**{by_wall:.2f}x**",
                    "1.00x" if steps == 1 else f"**{by_cpu:.2f}x**",
                ]
            )
            data_out["results"].append(
                {
                    "model": model,
                    "steps_per_execution": steps,
                    "epoch_wall_s": wall,
                    "epoch_cpu_s": cpu,
                    "speedup_vs_1_wall": by_wall,
                    "speedup_vs_1_cpu": by_cpu,
                }
            )
    table = markdown_table(
        [
            "model",
            "steps_per_execution",
            "wall ms per batch",
            "CPU ms per batch",
            "speed vs 1 (wall)",
            "speed vs 1 (CPU)",
        ],
        rows,
        ["l", "r", "r", "r", "r", "r"],
    )
    report = "\n\n".join(
        [
            "# steps_per_execution on the CPU (bench/bench_steps_per_execution.py)",
            f"Run {timestamp()} in {time.perf_counter() - started:.0f} s. Machine: {described}.",
            SHARED_NOTE,
            f"{len(data.train):,} bundled training images ({batches} batches of {BATCH}) per "
            f"epoch, {args.epochs} epochs per training, {args.rounds} interleaved rounds; the "
            "first epoch of each training (tracing) is excluded. Per batch: median steady epoch "
            "(training + scoring 64 validation images) / batches. Ratio: baseline epoch time / "
            "variant epoch time, median over rounds.",
            table,
            "Not measured: any GPU. On a GPU the step of these models is far shorter than on "
            "this CPU, so the per-call overhead weighs more there; how much more was not "
            "measured.",
        ]
    )
    write_result("steps_per_execution", report, data_out)


if __name__ == "__main__":
    main()
