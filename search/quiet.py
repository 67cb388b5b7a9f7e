"""A quiet start: TensorFlow's start-up lines are dropped unless `--verbose` asks for them.

On a machine without a GPU, importing TensorFlow writes lines like "oneDNN custom operations
are on", "Could not find cuda drivers" and "failed call to cuInit" straight to file
descriptor 2 from C++, some of them before absl's logging is initialised, so neither
`TF_CPP_MIN_LOG_LEVEL` nor Python's logging can silence them all. What works is to hold
descriptor 2 for the duration of the import (and the first look for GPUs, where cuInit
runs), then write back every line that is not one of the known start-up notices: a real
error printed in that window still shows. Outside the window nothing is filtered.

The hook is installed once per process by the CLI, so every `--workers` child, being
`python -m search run ...` itself, starts quietly too.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

# Start-up notices, not errors: each says something about the machine that the device line
# (`device: CPU (...)`) already says in our words.
START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|cpu_feature_guard\.cc"
)
QUIET_MODULES = ("tensorflow", "keras")


@contextlib.contextmanager
def start_up_lines_filtered() -> Iterator[None]:
    """Hold file descriptor 2; on exit write back its lines minus `START_UP_NOISE`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [
                line for line in text.splitlines(keepends=True) if not START_UP_NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's module code with the start-up lines filtered."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with start_up_lines_filtered():
            self._inner.exec_module(module)
            if self._name == "tensorflow":
                # cuInit runs at the first look for GPUs: do it now, inside the window.
                module.config.list_physical_devices("GPU")
            else:
                # get_file's "Downloading data from ..." goes to absl's INFO log instead of
                # stdout (keras MNIST offline: the fallback notice is the one line to see).
                module.config.disable_interactive_logging()

    def __getattr__(self, name: str) -> Any:
        # get_resource_reader, is_package, ...: whatever importlib asks of the real loader
        return getattr(self._inner, name)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first import of each of `QUIET_MODULES`, then steps aside."""

    def __init__(self) -> None:
        self.pending = set(QUIET_MODULES)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader, fullname)
        return spec


# Loggers whose warnings are start-up chatter, not a fault (matplotlib: "Matplotlib is
# building the font cache; this may take a moment." on a machine's first run).
CHATTY_START_UP_LOGGERS = ("matplotlib",)


def configure_our_lines(verbose: bool = False) -> None:
    """Log records reach stderr as their bare message: `keras MNIST unavailable ...`, never
    `WARNING:search.data:keras MNIST ...`. Root gets its handler now, before any library's
    `logging.warning(...)` can install the default `LEVEL:name:` format (a later
    `logging.basicConfig` is then a no-op). The level stays WARNING; `run` lowers it to INFO."""
    if not verbose:
        for name in CHATTY_START_UP_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record, not when it was made."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_start_up(verbose: bool) -> None:
    """Quiet (default) or verbose library start-up; call before anything imports TensorFlow."""
    configure_our_lines(verbose)
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING
    if not any(isinstance(f, _QuietImports) for f in sys.meta_path):
        pending = [m for m in QUIET_MODULES if m not in sys.modules]
        if pending:
            finder = _QuietImports()
            finder.pending = set(pending)
            sys.meta_path.insert(0, finder)
