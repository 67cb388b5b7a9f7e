"""Optuna's journal file storage, with a heartbeat and a kernel writer lock.

Optuna 5's `JournalStorage` has no heartbeat, so `HeartbeatJournalStorage` adds one that
Optuna's optimize loop drives the same way as RDB storages': the heartbeat is a trial system
attribute (`vae_search:heartbeat`, wall-clock seconds) appended to the journal. Heartbeats are
driven by `Study.optimize`; a runner that uses ask/tell must call
`optuna.storages.fail_stale_trials` and record heartbeats itself.

Local workers. `--workers N` on one machine defaults to the journal file storage
(`journal:///studies/<study>.log`, see `default_storage_url(..., parallel=True)`), with an
`flock` writer lock instead of Optuna's polling symlink lock. Measured by
`bench/bench_storage.py` (`bench/results/storage.md`): neither SQLite nor the journal lost or
duplicated a trial with 1, 2 or 4 workers, but SQLite serialises writers behind one database
lock, so 4 workers are no faster than 1. Under 8 writers with a heartbeat every second,
Optuna's symlink lock once kept a heartbeat waiting past its grace period, so a live trial was
failed as dead and its worker crashed (not in every run; an earlier, busier run saw the same on
SQLite's lock, for half its workers). The journal with `flock` never had such a failure, costs
2-6 ms of worker CPU per trial against SQLite's 13-27 ms, and a writer killed while holding its
lock releases it at once. SQLite stays the one-process default: one file that
`optuna-dashboard` opens directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import FrozenTrial

from search.errors import UsageError
from search.heartbeat import AttrHeartbeat

_JOURNAL_SUFFIXES = (".log", ".journal")


class HeartbeatJournalStorage(JournalStorage, AttrHeartbeat):
    """Optuna's journal storage with the RDB storage's heartbeat contract (`AttrHeartbeat`:
    the heartbeat is the trial system attribute `vae_search:heartbeat`)."""

    def __init__(
        self,
        backend: JournalFileBackend,
        *,
        heartbeat_interval: int | None,
        grace_period: int | None,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback


class WholeLineJournalBackend(JournalFileBackend):
    """Optuna's journal file backend whose appends land whole or not at all.

    Optuna writes a batch of log lines with one buffered `write`; a write that fails half-way
    (a full disk) leaves a partial last line, and the next append is glued onto it, after which
    the whole file no longer reads. Here the file's size is noted before the write, and a
    failed write is cut back to it; a torn last line left by a writer that died mid-write is
    cut off (with a one-line warning) under the writer lock, before anything is appended.
    """

    def __init__(self, file_path: str, lock_obj: BaseJournalFileLock) -> None:
        super().__init__(file_path, lock_obj=lock_obj)
        self._lock_obj = lock_obj

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._lock_obj.acquire()
        try:
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
            try:
                _cut_torn_tail(fd, self._file_path)
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
        finally:
            self._lock_obj.release()


def _cut_torn_tail(fd: int, path: str) -> None:
    """Cut off a last line that has no newline or is not JSON (a write that died half-way).

    Only called with the writer lock held, so no live writer is in the middle of that line.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return
    start = max(0, size - (1 << 20))
    tail = os.pread(fd, size - start, start)
    complete = tail.endswith(b"\n")
    body = tail if not complete else tail[:-1]
    cut = body.rfind(b"\n")
    if cut < 0:
        return  # no complete line before it: not evidently a journal; the reader says so
    before = body[:cut]
    try:  # a torn line follows a journal record; anything else is not ours to cut
        json.loads(before[before.rfind(b"\n") + 1 :])
    except ValueError:
        return
    last = body[cut + 1 :]
    if complete:
        try:
            json.loads(last)
            return
        except ValueError:
            pass
    keep = start + cut + 1
    os.ftruncate(fd, keep)
    print(
        f"warning: cut off a torn last line of the journal {path} ({size - keep} bytes, "
        "a write that did not finish); every complete record is kept",
        file=sys.stderr,
    )


def repair_torn_tail(path: Path, lock: BaseJournalFileLock) -> None:
    """On open, cut off a torn last line, if the file is writable (a reader never writes)."""
    if not os.access(path, os.W_OK) or not path.is_file():
        return
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            ends_whole = f.read(1) == b"\n"
        if ends_whole and _last_line_is_json(path):
            return
        lock.acquire()
    except OSError:
        return
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            _cut_torn_tail(fd, str(path))
        finally:
            os.close(fd)
    except OSError:
        pass
    finally:
        lock.release()


def _last_line_is_json(path: Path) -> bool:
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (1 << 20))
        f.seek(start)
        body = f.read()[:-1]
    try:
        json.loads(body[body.rfind(b"\n") + 1 :])
    except ValueError:
        return start > 0 and body.rfind(b"\n") < 0
    return True


class FlockLock(BaseJournalFileLock):
    """The journal's writer lock as `flock` on `<journal>.flock`.

    Optuna's default symlink lock polls with a back-off of up to 1 s, so under many writers a
    heartbeat can wait seconds for its turn, and a writer killed while holding it blocks
    everyone for its 30 s grace period. A kernel lock queues waiters and is released the moment
    its holder dies. Works on local disks and NFSv4.
    """

    def __init__(self, journal_path: str) -> None:
        self._path = journal_path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def journal_path(url: str) -> Path | None:
    if url.lower().startswith("journal:"):
        rest = url[len("journal:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise UsageError(
                f"malformed journal URL {url!r}: use journal:///relative/path.log or "
                "journal:////absolute/path.log"
            )
        return Path(rest[3:])
    if "://" not in url and url.lower().endswith(_JOURNAL_SUFFIXES):
        return Path(url)
    return None


def open_journal(
    path: Path,
    heartbeat_interval: int | None,
    grace_period: int | None,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    must_exist: bool,
) -> BaseStorage:
    if must_exist and not path.is_file():
        raise UsageError(f"no study storage at {path}")
    if path.is_dir():
        raise UsageError(f"the journal storage path {path} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FlockLock(str(path))
        repair_torn_tail(path, lock)
        backend = WholeLineJournalBackend(str(path), lock_obj=lock)
    except OSError as err:
        raise UsageError(f"cannot open the journal file {path}: {err.strerror}") from err
    try:
        return HeartbeatJournalStorage(
            backend,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=callback,
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        # json.JSONDecodeError is a ValueError. The file is only read here, never rewritten.
        raise UsageError(
            f"{path} is not an Optuna journal file (or is damaged): {_first_line(err)}"
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
