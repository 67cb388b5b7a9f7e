"""Stored text made safe to print: a study name or a stored reason is data, not terminal input.

A name with a newline would forge a row of the `studies` table; an ANSI escape would recolour
or move the user's cursor; a character that stdout's encoding cannot write (an RTL letter under
`PYTHONIOENCODING=ascii`) would end the command in a UnicodeEncodeError. Control characters are
shown as Python escapes, and what the stream cannot encode as backslash escapes.
"""

from __future__ import annotations

import sys
from typing import TextIO


def shown(text: object, stream: TextIO | None = None) -> str:
    """`text` as one printable line for `stream` (default: stdout)."""
    out = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text)
    )
    encoding = getattr(stream or sys.stdout, "encoding", None) or "utf-8"
    return out.encode(encoding, errors="backslashreplace").decode(encoding, errors="replace")
