"""A stored command line split into its words, in time linear in its length.

`shlex.split` builds each word one character at a time by string concatenation on an
attribute, which CPython cannot do in place: a word of n characters costs O(n²), and a 10 MB
stored command kept `report` busy for over 11 minutes. This splitter follows `shlex.split`'s
POSIX rules (the ones `shlex.quote` writes for): words end at space, tab, CR or LF; '...'
is literal; inside "..." a backslash escapes only '"' and '\\'; outside quotes a backslash
escapes the next character. An unclosed quote or a trailing backslash is a ValueError, as
in `shlex.split`.
"""

from __future__ import annotations

import re

_PART = re.compile(
    r"""'(?P<single>[^']*)'"""
    r'''|"(?P<double>(?:[^"\\]+|\\.)*)"'''
    r"""|\\(?P<escaped>.)"""
    r"""|(?P<plain>[^ \t\r\n'"\\]+)"""
    r"""|(?P<space>[ \t\r\n]+)""",
    re.DOTALL,
)
_DOUBLE_ESCAPE = re.compile(r'\\(["\\])')


def split_words(command: str) -> list[str]:
    """The words of `command`, as `shlex.split(command)` gives them."""
    words: list[str] = []
    parts: list[str] = []
    in_word = False
    pos = 0
    while pos < len(command):
        match = _PART.match(command, pos)
        if match is None:
            raise ValueError(f"no closing quotation or escaped character at {pos}")
        pos = match.end()
        kind = match.lastgroup
        if kind == "space":
            if in_word:
                words.append("".join(parts))
                parts, in_word = [], False
            continue
        text = match.group(kind or "plain")
        parts.append(_DOUBLE_ESCAPE.sub(r"\1", text) if kind == "double" else text)
        in_word = True
    if in_word:
        words.append("".join(parts))
    return words
