"""What a command-line value may be: whole numbers and seconds within bounds, worker counts,
GPU lists, model parameters; each refused with one message that names the range."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from search import defaults
from search.errors import UsageError

# Upper bounds on counts: far above any real use, low enough that no value can make the tool
# allocate, enqueue or start without end.
MAX_COUNT = 10_000_000
MAX_EPOCHS = 10_000
MAX_TRIALS = 100_000
MAX_WORKERS = 256
MAX_GPU_INDEX = 1023
MAX_REPEATS = 1000
MAX_ETA = 100
MAX_NOISE_MARGIN = 100.0
MAX_BATCH = 65_536
MAX_HEARTBEAT_S = 86_400


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        command = " ".join(self.prog.split()[1:])  # "" for the top level, else the command
        raise UsageError(f"{message} (see `python -m search {command} --help`)".replace("  ", " "))


def whole(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    """Parser of a whole number within low..high (the message says the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {what} {low}..{high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} {low}..{high}, got {text!r}")
        return value

    return parse


def real(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (not a finite number)")
    return value


def seconds(text: str) -> float:
    value = real(text, "a number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def noise_margin(text: str) -> float:
    value = real(text, "a number of seed SDs")
    if not 0 <= value <= MAX_NOISE_MARGIN:
        raise argparse.ArgumentTypeError(
            f"expected a number of seed SDs 0..{MAX_NOISE_MARGIN:g}, got {text!r}"
        )
    return value


def pruning_defaults(name: str) -> str:
    return ", ".join(f"{p} {getattr(v, name):g}" for p, v in defaults.PRESETS.items())


def kl_weight(text: str) -> float:
    low, high = defaults.PARAM_LIMITS["beta"]
    value = real(text, f"a KL weight {low:g}..{high:g}")
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a KL weight {low:g}..{high:g}, got {text!r}")
    return value


def model_int(name: str) -> Callable[[str], int]:
    low, high = defaults.PARAM_LIMITS[name]
    return whole(int(low), int(high))


AUTO = "auto"


def worker_count(text: str) -> int | str:
    """A worker count, or `auto` (`run` decides from the GPUs, or the CPU cores)."""
    if text.strip().lower() == AUTO:
        return AUTO
    return whole(1, MAX_WORKERS, "auto or a whole number")(text)


def gpu_list(text: str) -> list[int]:
    parse = whole(0, MAX_GPU_INDEX, "GPU indices like 0,1: each")
    return [parse(part) for part in text.split(",") if part.strip()]
