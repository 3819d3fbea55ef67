"""Rounding and overflow modes: one spelling for the API, CLI, YAML, traces and docs.

Each mode also has a small integer code (its position in the enum) so Numba kernels can take it
as a plain argument.
"""

from __future__ import annotations

import enum

from formats.errors import RsimError


class Rounding(str, enum.Enum):
    """How a value between two grid points picks one.

    nearest_even: ties to even (IEEE default, numpy rint, Ristretto on GPU);
    nearest_away: ties away from zero (C round(), Ristretto on CPU);
    nearest_up: ties toward +inf (ap_fixed AP_RND, "add half an LSB then floor");
    floor: toward -inf (dropping two's-complement LSBs, ap_fixed AP_TRN);
    toward_zero: truncation of the magnitude;
    stochastic: floor(x + u), u uniform in [0, 1) from a seeded numpy Generator.
    """

    NEAREST_EVEN = "nearest_even"
    NEAREST_AWAY = "nearest_away"
    NEAREST_UP = "nearest_up"
    FLOOR = "floor"
    TOWARD_ZERO = "toward_zero"
    STOCHASTIC = "stochastic"

    @property
    def code(self) -> int:
        return _ROUNDING_CODES[self]

    def __str__(self) -> str:
        return self.value


class Overflow(str, enum.Enum):
    """What happens to a value beyond the format's range.

    saturate: clamp to [min, max]; wrap: two's-complement wrap-around (modulo 2^bits);
    saturate_symmetric: clamp to [-max, max], so the most negative code is never produced.
    """

    SATURATE = "saturate"
    WRAP = "wrap"
    SATURATE_SYMMETRIC = "saturate_symmetric"

    @property
    def code(self) -> int:
        return _OVERFLOW_CODES[self]

    def __str__(self) -> str:
        return self.value


_ROUNDING_CODES = {mode: i for i, mode in enumerate(Rounding)}
_OVERFLOW_CODES = {mode: i for i, mode in enumerate(Overflow)}


def as_rounding(value: str | Rounding, what: str = "rounding") -> Rounding:
    """Parse a rounding name, naming `what` and the valid names on failure."""
    try:
        return Rounding(value)
    except ValueError:
        valid = ", ".join(m.value for m in Rounding)
        raise RsimError(f"{what}: unknown rounding {value!r}; valid: {valid}") from None


def as_overflow(value: str | Overflow, what: str = "overflow") -> Overflow:
    """Parse an overflow name, naming `what` and the valid names on failure."""
    try:
        return Overflow(value)
    except ValueError:
        valid = ", ".join(m.value for m in Overflow)
        raise RsimError(f"{what}: unknown overflow {value!r}; valid: {valid}") from None
