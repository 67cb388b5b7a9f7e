"""Stop signals that are not lost: Ctrl-C, SIGTERM and SIGHUP end a command with one line and
exit code 128 + the signal's number, wherever they land (a light module: the CLI uses it
before anything heavy is imported)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
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
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable_hook(previous_hook)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = previous_hook


def _unraisable_hook(previous: Callable[[Any], object]) -> Callable[[Any], object]:
    """Python prints "Exception ignored in ..." and a traceback when our KeyboardInterrupt is
    raised inside a garbage-collector or __del__ callback (seen: JAX's gc callback during
    start-up). STOP has remembered the signal and the command stops at its next check, so
    that one is dropped; anything else is printed as before."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and STOP.signum is not None:
            return
        previous(unraisable)

    return hook


def exit_code_of_stop() -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + (STOP.signum or signal.SIGINT)
