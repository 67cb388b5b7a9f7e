"""Errors a user can cause.

The CLI turns a `UsageError` into one line on stderr (`error: ...`) and exit code 2.
Anything else is a bug and stays loud (traceback).
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input the user can fix: a missing file, a bad option value, an unreachable database."""
