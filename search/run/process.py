"""What a run needs from its process: signals that are not lost, a garbage collector that
leaves start-up objects alone, and its command line without secrets."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StopRequest:
    """SIGINT/SIGTERM/SIGHUP handler that is not lost.

    Raising KeyboardInterrupt from a signal handler is not enough on its own: when the signal
    lands while Python runs a weakref or __del__ callback (TensorFlow triggers many), the
    exception is printed as "ignored" and training goes on. So the handler also remembers the
    signal, and the objective checks it at every epoch end and before every trial.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {self.signum}")


STOP = StopRequest()
# The signals that stop a run cleanly: Ctrl-C; what Kubernetes and Slurm send; and a closed
# terminal or ssh session (SIGHUP left the running trial RUNNING until a heartbeat failed it).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """STOP handles the stop signals for the duration: from a command's first line, so a
    Ctrl-C during TensorFlow's start-up or a SIGTERM while the report is written is not lost
    (seen: a start-up Ctrl-C swallowed and the run trained on; SIGTERM in the report step
    died without a word). Nested uses share the outer one's pending signal.
    """
    if signal.getsignal(signal.SIGINT) is STOP:
        yield
        return
    STOP.signum = None  # a signal handled by an earlier command in this process is not ours
    previous = {sig: signal.signal(sig, STOP) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code_of_stop() -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + (STOP.signum or signal.SIGINT)


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
