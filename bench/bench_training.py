"""Training speed of `search.training.train_vae` against plain `model.fit`, at equal batch sizes.

Both sides train the same model (`search.model.build_vae` defaults) on the same images for the
same epochs at the same batch size, and both are charged the same kind of work: a whole
training, from a fresh Keras session through model build, compile, the first trace and every
epoch. The baseline is what the original notebook did: `model.fit` on numpy arrays, Adam(1e-3),
Keras' default compile. Against it, `train_vae` as a study calls it (tf.data pipeline,
`STEPS_PER_EXECUTION` batches per call), which also does work the baseline does not: it scores
a 64-image validation subset after every epoch and 64 validation, training and test images at
the end. That scoring is charged to train_vae, so the comparison leans against it.

Method: for each batch size, one training of each side, in alternating order, repeated; the
ratio of a pair is baseline seconds / train_vae seconds (above 1: train_vae is faster), and the
table gives the median and range over the repeats. The machine is shared, so CPU seconds
(process user + system time, which the load disturbs much less) are given beside wall-clock.
The same trainings also give the steady epochs alone (epoch 2 on, each side timed from the
start to the end of the epoch by a Keras callback), and their set-up (build, compile, first
epoch with its trace). One untimed training of each side comes first, so the process's
one-time costs (TensorFlow's start, the first graph) land on neither side.

The default size is a quick-preset trial's training: all 3,600 bundled training images, 6
epochs; at smaller sizes the set-up (about 2 s here) hides the epochs.

Usage: python bench/bench_training.py [--images 3600] [--epochs 6] [--repeats 5]
                                      [--batches 32,64,128]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from common import (
    SHARED_NOTE,
    clock,
    machine,
    markdown_table,
    median,
    timestamp,
    write_result,
)

PARAMS: dict[str, Any] = {}  # the model's defaults: k=8, 2 conv layers of 32, dense 64, bce
SCORED_IMAGES = 64  # train_vae's scoring per epoch and at the end (each split)
TARGET = 1.3  # train_vae's speed over the baseline


@dataclass
class Training:
    """One whole training: wall and CPU seconds, and each epoch's wall seconds."""

    wall: float
    cpu: float
    epochs: list[float]

    @property
    def steady(self) -> float:
        """Median wall seconds of the epochs after the first (which holds the trace)."""
        return median(self.epochs[1:])

    @property
    def setup(self) -> float:
        """Everything but the steady epochs: session, build, compile, first epoch, scoring."""
        return self.wall - sum(self.epochs[1:])


@dataclass
class Pair:
    batch_size: int
    baseline: list[Training] = field(default_factory=list)
    train_vae: list[Training] = field(default_factory=list)

    def ratios(self, measure: str) -> list[float]:
        """Per repeat: baseline / train_vae for `measure` ('wall', 'cpu' or 'steady')."""
        return [
            getattr(b, measure) / getattr(t, measure)
            for b, t in zip(self.baseline, self.train_vae, strict=True)
        ]


def spread(values: list[float]) -> str:
    return f"{median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def train_with_fit(data: Any, batch_size: int, epochs: int) -> Training:
    """The baseline: what the notebook did, from a fresh session to the last epoch."""
    import keras

    from search.model import build_vae

    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.started)

    w0, c0 = clock()
    keras.backend.clear_session()  # as train_vae does: a fresh session per training
    keras.utils.set_random_seed(0)
    model = build_vae(PARAMS, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(
        data.train.images,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[EpochTimer()],
    )
    w1, c1 = clock()
    return Training(w1 - w0, c1 - c0, seconds)


def train_with_train_vae(data: Any, batch_size: int, epochs: int) -> Training:
    from search.training import TrainConfig, train_vae

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        seed=0,
        validation_subset=SCORED_IMAGES,
        train_eval_subset=SCORED_IMAGES,
        test_eval_subset=SCORED_IMAGES,
    )
    w0, c0 = clock()
    result = train_vae(PARAMS, data, config)
    w1, c1 = clock()
    assert result.epochs_run == epochs, result.stopped_reason
    # A curve row's seconds run from the epoch's start to the end of its validation scoring.
    return Training(w1 - w0, c1 - c0, [row["seconds"] for row in result.curve])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3600, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per training (>= 2)")
    parser.add_argument("--repeats", type=int, default=5, help="trainings per side and batch")
    parser.add_argument("--batches", default="32,64,128", help="batch sizes, comma-separated")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch holds the trace")

    from search.data import Split, load_mnist
    from search.defaults import PRESETS
    from search.training import STEPS_PER_EXECUTION

    started = time.perf_counter()
    full = load_mnist("bundled", seed=0)
    # The validation split shrunk too: train_vae scores all of it at the end.
    data = dataclasses.replace(
        full,
        train=Split(full.train.images[: args.images], full.train.labels[: args.images]),
        validation=Split(
            full.validation.images[:SCORED_IMAGES], full.validation.labels[:SCORED_IMAGES]
        ),
    )
    n = len(data.train)
    batches = [int(b) for b in args.batches.split(",")]
    described = machine()

    train_with_fit(data, batches[0], 2)  # untimed: the process's one-time costs
    train_with_train_vae(data, batches[0], 2)
    pairs = [Pair(b) for b in batches]
    for repeat in range(args.repeats):
        for pair in pairs:
            # Alternate which side goes first, so a drift in the machine's load favours neither.
            sides = [("baseline", train_with_fit), ("train_vae", train_with_train_vae)]
            for side, train in sides if repeat % 2 == 0 else sides[::-1]:
                getattr(pair, side).append(train(data, pair.batch_size, args.epochs))
            b, t = pair.baseline[-1], pair.train_vae[-1]
            print(
                f"repeat {repeat + 1}, batch {pair.batch_size}: fit {b.wall:.1f} s "
                f"({b.cpu:.1f} CPU), train_vae {t.wall:.1f} s ({t.cpu:.1f} CPU) -> "
                f"{b.wall / t.wall:.2f}x wall, {b.cpu / t.cpu:.2f}x CPU",
                flush=True,
            )

    rows = []
    for pair in pairs:
        fit_wall = median([t.wall for t in pair.baseline])
        vae_wall = median([t.wall for t in pair.train_vae])
        rows.append(
            [
                pair.batch_size,
                f"{fit_wall:.1f}",
                f"{vae_wall:.1f}",
                spread(pair.ratios("wall")),
                spread(pair.ratios("cpu")),
                f"{n / median([t.steady for t in pair.baseline]):.0f}",
                f"{n / median([t.steady for t in pair.train_vae]):.0f}",
                spread(pair.ratios("steady")),
                f"{median([t.setup for t in pair.baseline]):.1f} / "
                f"{median([t.setup for t in pair.train_vae]):.1f}",
            ]
        )
    table = markdown_table(
        [
            "batch (both sides)",
            "fit: whole training s",
            "train_vae: whole training s",
            "train_vae speed vs fit, whole training (wall)",
            "same, CPU time",
            "fit: steady images/s",
            "train_vae: steady images/s",
            "train_vae speed vs fit, steady epochs (wall)",
            "rest of the training s (set-up, first epoch, scoring), fit / train_vae",
        ],
        rows,
        ["r"] * 9,
    )

    default_batch = PRESETS["full"].batch_size
    quick_batch = PRESETS["quick"].batch_size
    headline_pairs = [p for p in pairs if p.batch_size in (default_batch, quick_batch)] or pairs
    verdicts = []
    for pair in headline_pairs:
        wall, cpu = median(pair.ratios("wall")), median(pair.ratios("cpu"))
        met = "met" if wall >= TARGET and cpu >= TARGET else "not met"
        verdicts.append(
            f"at batch {pair.batch_size}, {wall:.2f}x by wall and {cpu:.2f}x by CPU time "
            f"(>= {TARGET}x: {met})"
        )
    report = "\n\n".join(
        [
            "# Training speed: train_vae vs model.fit (bench/bench_training.py)",
            f"Run {timestamp()} in {time.perf_counter() - started:.0f} s. Machine: {described}.",
            SHARED_NOTE,
            f"Model: `build_vae` defaults (latent_dim 8, 2 conv layers of 32 filters, dense 64, "
            f"bce loss); {n} bundled MNIST training images, {args.epochs} epochs per training; "
            f"{args.repeats} trainings per side and batch size, the sides alternating which "
            f"goes first. Both sides at the same batch size in every row. Baseline: "
            f"`model.fit` on numpy arrays, Adam(1e-3), Keras' default compile (1 batch per "
            f"call). train_vae: tf.data, {STEPS_PER_EXECUTION} batches per call, and the "
            f"scoring the baseline does not do ({SCORED_IMAGES} validation images after every "
            f"epoch; {SCORED_IMAGES} validation, training and test images at the end). Whole "
            f"training = fresh Keras session, model build, compile, first epoch with its trace, "
            f"the other epochs (and train_vae's scoring), timed around the call. Speed ratio = "
            f"fit seconds / train_vae seconds per repeat: median (range). Steady epochs = "
            f"epochs 2 to {args.epochs}, timed inside each training by a callback (train_vae's "
            f"include its per-epoch scoring).",
            table,
            "**Headline: train_vae's speed over plain `model.fit` at equal batch size, whole "
            "trainings: " + "; ".join(verdicts) + ".** "
            f"(Batch {default_batch} is the full preset's; "
            f"{quick_batch} the quick preset's.)",
        ]
    )
    write_result(
        "training",
        report,
        {
            "images": n,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "machine": described,
            "target": TARGET,
            "pairs": [
                {
                    "batch_size": p.batch_size,
                    "baseline": [dataclasses.asdict(t) for t in p.baseline],
                    "train_vae": [dataclasses.asdict(t) for t in p.train_vae],
                    "ratio_wall": p.ratios("wall"),
                    "ratio_cpu": p.ratios("cpu"),
                    "ratio_steady": p.ratios("steady"),
                }
                for p in pairs
            ],
        },
    )


if __name__ == "__main__":
    main()
