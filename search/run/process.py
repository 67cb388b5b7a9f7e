"""What a run needs from its process: a garbage collector that leaves start-up objects alone,
and its command line without secrets (its stop signals: search/stopping.py)."""

from __future__ import annotations

import gc

_frozen = False


def freeze_start_up_objects() -> None:
    """Exempt what start-up created (TensorFlow, Keras, Optuna, the data) from every later
    garbage collection, once per process.

    Those ~400,000 objects live as long as the process, yet every full collection walked
    them: Keras' clear_session() runs one per trial, and allocation-heavy steps (tracing,
    save_weights) trigger more. Each took ~0.3 s of a ~4 s quick-preset trial on this CPU
    (bench/results/throughput.md). Collected first, so no garbage is frozen; only once, so
    a later call cannot freeze a finished trial's model.
    """
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def without_storage(argv: list[str]) -> list[str]:
    """`argv` less its `--storage URL` / `--storage=URL` (a password stays out of `ps`)."""
    kept: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--storage":
            skip_next = True
        elif not arg.startswith("--storage="):
            kept.append(arg)
    return kept
