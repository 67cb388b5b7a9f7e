"""Faults of the machine in the middle of work: a full disk, a storage that broke, a closed pipe.

They are not bad input (exit 2, nothing changed) and not bugs (a traceback): the command says
in one `error:` line what failed and where, and exits `EXIT_FAULT`. A `run` first marks its
trial FAIL with the reason, so the study stays resumable (search/run/driver.py).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator

# Neither 1 (a run stopped by too many failed trials) nor 2 (bad input, nothing changed).
EXIT_FAULT = 3
# A reader that went away (`... | head`): exit as a Unix tool killed by SIGPIPE would.
EXIT_BROKEN_PIPE = 128 + 13

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}
# What SQLite says when its file filled the disk, vanished or was cut short under it.
_SQLITE_FAULTS = (
    "database or disk is full",
    "disk i/o error",
    "database disk image is malformed",
    "file is not a database",
    "attempt to write a readonly database",
    "no such table",
)
# PostgreSQL SQLSTATEs of a server that went away or ran out of something: 08 connection
# exception, 57P01-57P05 shut down, crashed or not taking connections yet, 53 insufficient
# resources (disk full, out of memory, too many connections), 58 system error (I/O). Other
# OperationalErrors (a cancelled statement, a serialization failure, a lock) stay bugs.
_PG_LOST = ("08", "57P")
_PG_FAULTS = (*_PG_LOST, "53", "58")


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, its causes and contexts, and the driver errors SQLAlchemy wraps (`.orig`)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [
            current.__cause__,
            current.__context__,
            orig if isinstance(orig, BaseException) else None,
        ]


def fault_reason(err: BaseException) -> str | None:
    """What failed, in a few words, when `err` is (or was caused by) a fault of the machine: a
    full disk, an I/O error, a SQLite file that filled up, vanished or was damaged, a
    PostgreSQL server that went away or refused the connection. None
    for anything else (a bug stays a traceback)."""
    for found in _chain(err):
        if isinstance(found, OSError) and found.errno in _DISK_ERRNOS:
            where = f"{found.filename}: " if found.filename else ""
            return f"{where}{found.strerror or os.strerror(found.errno or 0)}"
        if isinstance(found, sqlite3.Error):
            text = str(found).strip()
            if any(marker in text.lower() for marker in _SQLITE_FAULTS):
                return f"the SQLite storage failed ({text})"
        postgres = _postgres_fault(found)
        if postgres is not None:
            return postgres
    return None


def _postgres_fault(err: BaseException) -> str | None:
    """The reason for a PostgreSQL server that refused, dropped or failed the connection
    (psycopg's OperationalError without a SQLSTATE, or with one of `_PG_FAULTS`)."""
    psycopg = sys.modules.get("psycopg")  # an error of psycopg's means it is imported
    if psycopg is None or not isinstance(err, psycopg.OperationalError):
        return None
    state = getattr(err, "sqlstate", None)
    if state is not None and not state.startswith(_PG_FAULTS):
        return None
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if state is not None and not state.startswith(_PG_LOST):
        return f"the PostgreSQL storage failed ({text})"
    lowered = text.lower()
    how = "refused" if "refused" in lowered else "timed out" if "timeout" in lowered else "lost"
    return f"the PostgreSQL storage is out of reach (connection {how}: {text})"


def stdout_closed(err: BaseException) -> bool:
    """A write to stdout failed because its reader went away (`| head`, `| true`)."""
    return isinstance(err, BrokenPipeError) or (
        isinstance(err, OSError) and err.errno == errno.EPIPE
    )


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of what is still buffered
    cannot fail again (it would print `Exception ignored ... BrokenPipeError`)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture)
        pass


def exit_code(err: Exception, one_line: Callable[[str], str]) -> int:
    """The CLI's answer to `err` raised by a command: quiet for a closed stdout, one
    `error:` line for a fault, and `err` raised again for anything else (a bug)."""
    if stdout_closed(err):
        silence_stdout()
        return EXIT_BROKEN_PIPE
    reason = fault_reason(err)
    if reason is None:
        raise err
    if isinstance(err, OSError) and err.filename is None:
        # No file named: a stream that was open already, stdout most likely (`> /dev/full`).
        # What it still buffers must not fail again in the interpreter's last flush.
        silence_stdout()
        reason = f"cannot write the output: {reason}"
    print(f"error: {one_line(reason)}", file=sys.stderr)
    return EXIT_FAULT
