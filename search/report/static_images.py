"""Plotly figures -> PNG files for the PDF, through ONE kaleido browser for the whole report.

Kaleido 1.x drives a Chrome/Chromium it does not ship. Which one is used:
  1. `BROWSER_PATH`, if set (the variable kaleido/choreographer already honour);
  2. else what choreographer finds: a Chrome downloaded by `plotly_get_chrome` /
     `kaleido_get_chrome`, then `chrome`/`chromium`/... on PATH and the usual install paths.
No browser -> `UsageError` naming what to install. Kaleido can return without writing a file
(a failed render inside a batch), so every PNG is checked after the batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

# Imported here, at module import, in whichever thread first imports this module, and never
# in a thread of ours. Python's per-module import locks do not stop two threads importing one
# package at once from seeing it half-initialised (seen under load: `cannot import name
# '_KaleidoTab' from partially initialized module`, when the session's loop thread ran
# `import kaleido` while the main thread ran `from kaleido.errors import ...`; and
# `partially initialized module 'choreographer._brokers'` when a session imported kaleido
# while another thread did). The loop thread only uses what is imported here.
import kaleido
import kaleido.errors
from choreographer.browsers.chromium import Chromium

from search.errors import UsageError
from search.report.artifacts import PNG_SIGNATURE
from search.report.figure_style import FIGURE_WIDTH_PX
from search.report.figures import FigureSpec

log = logging.getLogger(__name__)

IMAGE_WIDTH = FIGURE_WIDTH_PX  # CSS px; the A4 text width is ~660 px: fonts shrink slightly
IMAGE_SCALE = 2
RENDER_TIMEOUT_S = 90
OPEN_TIMEOUT_S = 60  # Chromium starts in seconds, even on a loaded machine; a minute means never
CLOSE_TIMEOUT_S = 15
INSTALL_HINT = (
    "install Chromium (`apt-get install chromium`) or Chrome (`plotly_get_chrome`), "
    "or set BROWSER_PATH to its executable"
)


def find_chrome() -> str:
    """The Chrome/Chromium executable kaleido will drive, or UsageError saying what to install."""
    override = os.environ.get("BROWSER_PATH")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise UsageError(
            f"BROWSER_PATH={override!r} is not an executable; the PDF needs Chrome or Chromium "
            f"for its figures: {INSTALL_HINT}"
        )

    found = Chromium.find_browser(skip_local=False)
    if not found or not Path(found).is_file():
        raise UsageError(
            f"the PDF needs Chrome or Chromium for its figures and none was found: {INSTALL_HINT}"
        )
    return found


def describe_error(error: BaseException) -> str:
    """An exception's message as one sentence, never the repr of its args tuple."""
    parts = [" ".join(str(arg).split()) for arg in error.args]
    return " ".join(p for p in parts if p) or type(error).__name__


def tmpdir_problem() -> str | None:
    """Why $TMPDIR cannot hold the browser's profile, or None when it can (or is unset)."""
    value = os.environ.get("TMPDIR")
    if not value:
        return None
    if not Path(value).is_dir():
        return f"TMPDIR={value!r} is not a folder, and Chromium needs one: unset it or create it"
    if not os.access(value, os.W_OK | os.X_OK):
        return f"TMPDIR={value!r} is not writable, and Chromium needs it to be: unset it"
    return None


class BrowserStalled(Exception):
    """The browser did not answer in time (seen: a Chromium whose start never completes)."""


class KaleidoSession:
    """One Chromium, driven by kaleido, for the whole report; it starts in the background.

    Creating the session finds the browser (UsageError if there is none) and launches it on
    an event loop in a worker thread, so Chromium starts while the caller builds the context,
    the figures and the HTML; `write_pngs` waits for it. A thread also keeps this working when
    the caller already runs an event loop (e.g. Jupyter). Close it (or use `with`).

    Every wait is bounded: a Chromium that never finishes starting (seen on a loaded 2-core
    machine, with kaleido's own per-figure timeout never reached) is killed and started once
    more; a second stall is an error, so a report can never hang.
    """

    def __init__(self, tabs: int = 2) -> None:
        self.chrome = find_chrome()
        self.tabs = tabs
        self._kaleido_module = kaleido
        self._start()

    def _start(self) -> None:
        self._kaleido: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kaleido-report", daemon=True
        )
        self._thread.start()
        self._browser = asyncio.run_coroutine_threadsafe(self._open(self.tabs), self._loop)

    async def _open(self, tabs: int) -> Any:
        # mathjax=False: kaleido would otherwise load MathJax from a CDN.
        browser = self._kaleido_module.Kaleido(
            n=tabs, timeout=RENDER_TIMEOUT_S, mathjax=False, path=self.chrome
        )
        self._kaleido = browser  # so a start that stalls can still be killed
        await browser.open()
        return browser

    def _wait(self, future: concurrent.futures.Future[Any], seconds: float, what: str) -> Any:
        try:
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BrowserStalled(
                f"the browser at {self.chrome} did not {what} within {seconds:.0f} s"
            ) from None

    def _call(self, make: Callable[[Any], Coroutine[Any, Any, Any]], seconds: float) -> Any:
        errors = self._kaleido_module.errors
        try:
            browser = self._wait(self._browser, OPEN_TIMEOUT_S, "start")
            work = asyncio.run_coroutine_threadsafe(make(browser), self._loop)
            return self._wait(work, seconds, "render the figures")
        except errors.ChromeNotFoundError as error:
            raise UsageError(
                f"kaleido could not use the browser at {self.chrome}: {INSTALL_HINT}"
            ) from error
        except errors.BrowserFailedError as error:
            # Chromium needs a writable TMPDIR where Python quietly falls back to /tmp.
            hint = tmpdir_problem() or INSTALL_HINT
            raise UsageError(
                f"the browser at {self.chrome} failed to start ({describe_error(error)}); {hint}"
            ) from error

    def write_pngs(self, figures: Sequence[FigureSpec], directory: Path) -> dict[str, Path]:
        """Write every figure as `<key>.png` (scale 2) into `directory`; return {key: path}.

        Raises RuntimeError naming the figures whose PNG is missing or not a PNG.
        """
        paths = {spec.key: directory / f"{spec.key}.png" for spec in figures}
        if not figures:
            return paths
        jobs = [
            {
                "fig": spec.figure,
                "path": paths[spec.key],
                "opts": {
                    "format": "png",
                    "width": spec.width or IMAGE_WIDTH,
                    "height": spec.height,
                    "scale": IMAGE_SCALE,
                },
            }
            for spec in figures
        ]
        # kaleido bounds each figure by RENDER_TIMEOUT_S; the batch gets as long as its tabs
        # need one after the other, plus a margin.
        seconds = RENDER_TIMEOUT_S * math.ceil(len(jobs) / self.tabs) + 60

        def render(browser: Any) -> Coroutine[Any, Any, Any]:
            return browser.write_fig_from_object(jobs, cancel_on_error=True)

        try:
            self._call(render, seconds)
        except BrowserStalled as stalled:
            log.warning("%s; starting it again", stalled)
            self._restart()
            try:
                self._call(render, seconds)
            except BrowserStalled as again:
                raise UsageError(
                    f"{again} (twice), so the PDF was not written (the HTML was): run `report` "
                    "again, or set BROWSER_PATH to another Chrome/Chromium"
                ) from None
        broken = [
            key
            for key, path in paths.items()
            if not path.is_file() or path.read_bytes()[: len(PNG_SIGNATURE)] != PNG_SIGNATURE
        ]
        if broken:
            raise RuntimeError(f"kaleido did not write the figure images: {', '.join(broken)}")
        return paths

    def close(self) -> None:
        try:
            try:
                # wait for a launch under way to finish
                browser = self._wait(self._browser, OPEN_TIMEOUT_S, "start")
            except Exception:
                browser = None  # it never started; the error was or will be reported by _call
            if browser is not None:
                closing = asyncio.run_coroutine_threadsafe(browser.close(), self._loop)
                try:
                    self._wait(closing, CLOSE_TIMEOUT_S, "close")
                except BrowserStalled:
                    self._kill()
            else:
                self._kill()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
            if not self._thread.is_alive():
                self._loop.close()

    def _restart(self) -> None:
        self._kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        self._start()

    def _kill(self) -> None:
        """Kill the browser's process group (kaleido's wrapper and every Chromium process)."""
        process = getattr(self._kaleido, "subprocess", None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=CLOSE_TIMEOUT_S)

    def __enter__(self) -> KaleidoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
