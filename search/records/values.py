"""Reading stored values: a value of another type than expected reads as absent, never raises."""

from __future__ import annotations

import math
from typing import Any, Protocol


class AttrWriter(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...


def as_float(value: Any) -> float | None:
    """`value` as a finite float; None for None, bools, strings, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)
