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
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from search.errors import UsageError
from search.report.artifacts import PNG_SIGNATURE
from search.report.figures import FigureSpec

IMAGE_WIDTH = 760  # CSS px; the A4 text width is ~660 px, so fonts shrink only slightly
IMAGE_SCALE = 2
RENDER_TIMEOUT_S = 90
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
    from choreographer.browsers.chromium import Chromium

    found = Chromium.find_browser(skip_local=False)
    if not found or not Path(found).is_file():
        raise UsageError(
            f"the PDF needs Chrome or Chromium for its figures and none was found: {INSTALL_HINT}"
        )
    return found


class KaleidoSession:
    """One Chromium, driven by kaleido, for the whole report; it starts in the background.

    Creating the session finds the browser (UsageError if there is none) and launches it on
    an event loop in a worker thread, so Chromium starts while the caller builds the context,
    the figures and the HTML; `write_pngs` waits for it. A thread also keeps this working when
    the caller already runs an event loop (e.g. Jupyter). Close it (or use `with`).
    """

    def __init__(self, tabs: int = 2) -> None:
        self.chrome = find_chrome()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kaleido-report", daemon=True
        )
        self._thread.start()
        self._browser = asyncio.run_coroutine_threadsafe(self._open(tabs), self._loop)

    async def _open(self, tabs: int) -> Any:
        import kaleido

        # mathjax=False: kaleido would otherwise load MathJax from a CDN.
        browser = kaleido.Kaleido(n=tabs, timeout=RENDER_TIMEOUT_S, mathjax=False, path=self.chrome)
        await browser.open()
        return browser

    def _call(self, make: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        from kaleido.errors import BrowserFailedError, ChromeNotFoundError

        try:
            browser = self._browser.result()
            return asyncio.run_coroutine_threadsafe(make(browser), self._loop).result()
        except ChromeNotFoundError as error:
            raise UsageError(
                f"kaleido could not use the browser at {self.chrome}: {INSTALL_HINT}"
            ) from error
        except BrowserFailedError as error:
            raise UsageError(
                f"the browser at {self.chrome} failed to start ({error}); {INSTALL_HINT}"
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
                    "width": IMAGE_WIDTH,
                    "height": spec.height,
                    "scale": IMAGE_SCALE,
                },
            }
            for spec in figures
        ]
        self._call(lambda browser: browser.write_fig_from_object(jobs, cancel_on_error=True))
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
                browser = self._browser.result()  # wait for a launch under way to finish
            except Exception:
                browser = None  # it never started; the error was or will be reported by _call
            if browser is not None:
                asyncio.run_coroutine_threadsafe(browser.close(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> KaleidoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
