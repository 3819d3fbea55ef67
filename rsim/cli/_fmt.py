"""Figures in CLI tables and dimensions in CLI options: one set of formatters for `rsim simulate`
and `rsim trace`, one dims parser for the data and input-shape options.

The two tables spell a missing figure and infinity differently (`simulate`: ASCII "-" and "inf";
`trace`: "–" and "∞"), so the spelling is a parameter, not a second set of functions."""

from __future__ import annotations

import math

from formats.errors import RsimError

MISSING = "–"


def number(value: float | None, digits: int = 2, missing: str = MISSING,
           infinities: tuple[str, str] = ("∞", "−∞"), nan: str = "nan") -> str:
    """value to `digits` places; `missing` for None, `nan` for NaN, infinities as (+, -)."""
    if value is None:
        return missing
    if math.isnan(value):
        return nan
    if math.isinf(value):
        return infinities[value < 0]
    return f"{value:.{digits}f}"


def percent(share: float | None, missing: str = MISSING) -> str:
    """A share in [0, 1] as a percentage to 2 places."""
    return missing if share is None else f"{100.0 * share:.2f}"


def count(value: float | None, missing: str = MISSING) -> str:
    """A whole number with thousands separators."""
    return missing if value is None else f"{int(value):,}"


def parse_dims(text: str, what: str | None = None,
               expected: str = "DIMS such as 1x28x28") -> tuple[int, ...]:
    """Dimensions written 1x28x28 (or 1,28,28). A malformed text is an RsimError
    `{what} {text!r}: expected {expected}`; without `what`, int's ValueError is left to callers
    that name the whole option value themselves (--input-shape NAME=DIMS)."""
    try:
        return tuple(int(d) for d in text.lower().replace(",", "x").split("x"))
    except ValueError:
        if what is None:
            raise
        raise RsimError(f"{what} {text!r}: expected {expected}") from None
