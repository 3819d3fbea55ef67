"""Power of two: values +-2^k for k in [exp_min, exp_max], and 0 unless zero=false.

Rounding happens in the log2 domain, as Ristretto's INTEGER_POWER_OF_2_WEIGHTS does:
k = round(log2|x|) with the chosen rounding mode, then k is clamped to [exp_min, exp_max]
(with zero=true, a k below exp_min gives 0 instead). So the threshold between 2^k and 2^(k+1) is
the geometric mean 2^(k+0.5), which no binary float equals: ties cannot occur, and the nearest
modes agree. Ristretto's profile is zero=false (0 and tiny values become +2^exp_min; 0 counts as
positive). Codes are sign-magnitude: sign bit, then k - exp_min (+1 with zero, code 0 = zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numba import njit

from formats.base import Field, ScalarFormat, check_int
from formats.errors import RsimError
from formats.modes import Overflow, Rounding
from formats.rounding_nb import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, NEAREST_UP, STOCHASTIC,
                                 TOWARD_ZERO, by_rounding, exponent_of, floor_of_sum, pow2)
from formats.spec import Args, register

EXP_LIMIT = 1000


def _largest_double_below_sqrt2() -> float:
    c = math.sqrt(2.0)
    return c if Fraction(c) ** 2 < 2 else math.nextafter(c, 0.0)


_SQRT2_BELOW = _largest_double_below_sqrt2()  # f > sqrt(2) exactly iff f > this double


@njit(cache=True, inline="always")
def round_log2(a: float, rounding: int, u: float) -> int:
    """round(log2(a)) for a > 0 finite, exact for every deterministic mode."""
    e = exponent_of(a)
    if e == -1023:  # a float64 subnormal: far below any exponent range we allow
        return -1100
    f = a * pow2(-e)  # significand in [1, 2); log2(a) = e + log2(f)
    if rounding == NEAREST_EVEN or rounding == NEAREST_AWAY or rounding == NEAREST_UP:
        return e + 1 if f > _SQRT2_BELOW else e
    if rounding == FLOOR:
        return e
    if rounding == TOWARD_ZERO:
        return e if e >= 0 or f == 1.0 else e + 1
    return e + np.int64(floor_of_sum(np.log2(f), u))  # stochastic: log2(f) is rounded once


@njit(cache=True, inline="always")
def round_pow2(x: float, exp_min: int, exp_max: int, zero: bool, rounding: int, u: float) -> float:
    """x rounded to a power-of-two format (NaN stays NaN; callers reject it)."""
    if x != x:
        return x
    a = abs(x)
    sign = -1.0 if x < 0.0 else 1.0  # Ristretto: w >= 0 (so +-0) counts as positive
    if a == 0.0:
        return 0.0 if zero else pow2(exp_min)
    k = exp_max if a == np.inf else round_log2(a, rounding, u)
    if k < exp_min:
        return 0.0 if zero else sign * pow2(exp_min)
    return sign * pow2(min(k, exp_max))


@njit(cache=True, inline="always")
def _values_loop(rounding, x, u, out, params):
    exp_min, exp_max, zero = params
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        ui = u[i] if rounding == STOCHASTIC else 0.0
        out[i] = round_pow2(xi, exp_min, exp_max, zero, rounding, ui)
    return nan_count


@njit(cache=True, nogil=True)
def pow2_values_array(x, params, rounding, u, out):
    """out[i] = round_pow2(x[i], *params, rounding, u[i]); returns the number of NaN inputs."""
    return by_rounding(_values_loop, rounding, x, u, out, params)


@dataclass(frozen=True, repr=False)
class PowerOfTwo(ScalarFormat):
    """Signed powers of two 2^exp_min .. 2^exp_max, with or without zero."""

    exp_min: int
    exp_max: int
    zero: bool = True

    def __post_init__(self) -> None:
        lo = check_int(self.exp_min, "pow2 EMIN", -EXP_LIMIT, EXP_LIMIT)
        hi = check_int(self.exp_max, "pow2 EMAX", -EXP_LIMIT, EXP_LIMIT)
        if hi < lo:
            raise RsimError(f"pow2<{lo},{hi}>: EMAX must be >= EMIN")
        object.__setattr__(self, "exp_min", lo)
        object.__setattr__(self, "exp_max", hi)
        object.__setattr__(self, "zero", bool(self.zero))

    @property
    def _magnitudes(self) -> int:
        return self.exp_max - self.exp_min + 1 + int(self.zero)

    @property
    def bits(self) -> int:
        return 1 + max(1, (self._magnitudes - 1).bit_length())

    @property
    def max(self) -> float:
        return math.ldexp(1.0, self.exp_max)

    @property
    def min(self) -> float:
        return -self.max

    @property
    def smallest_positive(self) -> float:
        return math.ldexp(1.0, self.exp_min)

    @property
    def eps(self) -> float:
        """Relative step between neighbours: 1.0 (the next value above 1 is 2)."""
        return 1.0

    def layout(self) -> tuple[Field, ...]:
        return (Field("sign", 1), Field("exponent index", self.bits - 1))

    def describe(self) -> str:
        zero = "and zero" if self.zero else "no zero (0 rounds to +2^EMIN)"
        return (f"power of two, +-2^{self.exp_min} .. +-2^{self.exp_max} {zero}; "
                "rounds in the log2 domain")

    def __str__(self) -> str:
        return f"pow2<{self.exp_min},{self.exp_max}{'' if self.zero else ',zero=false'}>"

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        if overflow is Overflow.WRAP:
            raise RsimError(f"{self}: a power-of-two exponent saturates; overflow must be None, "
                            "saturate or saturate_symmetric")

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        return pow2_values_array(flat, (self.exp_min, self.exp_max, self.zero), rounding.code,
                                 u, out)

    def _encode(self, flat, shape, rounding: Rounding, overflow, u):
        values = np.empty(flat.size)
        nans = self._quantize(flat, shape, rounding, overflow, u, values)
        magnitude = np.zeros(flat.size, dtype=np.int64)
        nonzero = values != 0.0
        exponent = np.frexp(np.abs(values[nonzero]))[1] - 1
        magnitude[nonzero] = exponent - self.exp_min + int(self.zero)
        return np.where(values < 0, magnitude | (1 << (self.bits - 1)), magnitude), nans

    def _decode(self, codes, shape):
        magnitude = codes & ((1 << (self.bits - 1)) - 1)
        if np.any(magnitude >= self._magnitudes):
            raise RsimError(f"decode {self}: exponent index must be < {self._magnitudes}")
        exponent = magnitude - int(self.zero) + self.exp_min
        values = np.ldexp(1.0, exponent.astype(np.int32))
        if self.zero:
            values[magnitude == 0] = 0.0
        return np.where(codes >> (self.bits - 1) != 0, -values, values)


def _build(args: Args) -> PowerOfTwo:
    lo, hi = args.expect_positional(("EMIN", "EMAX"))
    zero = args.take("zero", True, (bool,), "true or false")
    args.done(("zero",))
    return PowerOfTwo(args.integer(lo, "EMIN"), args.integer(hi, "EMAX"), zero)


register("pow2", _build)
