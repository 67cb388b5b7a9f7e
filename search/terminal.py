"""Stored text made safe to print: a study name or a stored reason is data, not terminal input.

A name with a newline would forge a row of the `studies` table; an ANSI escape would recolour
or move the user's cursor; a character that stdout's encoding cannot write (an RTL letter under
`PYTHONIOENCODING=ascii`) would end the command in a UnicodeEncodeError. Control characters are
shown as Python escapes, and what the stream cannot encode as backslash escapes. A stored
string longer than `SHOWN_LIMIT` characters (a 10 MB command line, say) is shown by its start
and the count of what was left out.
"""

from __future__ import annotations

import sys
from typing import TextIO

SHOWN_LIMIT = 2000  # characters of one stored string that a page or a terminal shows


def bounded(text: str, limit: int = SHOWN_LIMIT) -> str:
    """`text`, or its first `limit` characters and how many more were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters not shown)"


def shown(text: object, stream: TextIO | None = None) -> str:
    """`text` as one printable line for `stream` (default: stdout), bounded."""
    out = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in bounded(str(text))
    )
    encoding = getattr(stream or sys.stdout, "encoding", None) or "utf-8"
    return out.encode(encoding, errors="backslashreplace").decode(encoding, errors="replace")
