"""Exact rounding of a float64 to an integer in every rounding mode, as Numba scalar functions.

Every quantizer in `formats` scales its input so that the grid becomes the integers (an exact
multiplication by a power of two), rounds here, and scales back; so this one function decides
every tie and every stochastic draw. Mode numbers are `formats.modes.Rounding.code`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from formats.modes import Overflow, Rounding

NEAREST_EVEN = Rounding.NEAREST_EVEN.code
NEAREST_AWAY = Rounding.NEAREST_AWAY.code
NEAREST_UP = Rounding.NEAREST_UP.code
FLOOR = Rounding.FLOOR.code
TOWARD_ZERO = Rounding.TOWARD_ZERO.code
STOCHASTIC = Rounding.STOCHASTIC.code

SATURATE = Overflow.SATURATE.code
WRAP = Overflow.WRAP.code
SATURATE_SYMMETRIC = Overflow.SATURATE_SYMMETRIC.code


@njit(cache=True, inline="always")
def two_sum(a: float, b: float) -> tuple[float, float]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@njit(cache=True, inline="always")
def floor_of_sum(y: float, u: float) -> float:
    """floor(y + u) of the exact sum, even where the float sum y + u rounds across an integer."""
    s, e = two_sum(y, u)
    r = np.floor(s)
    if r == s and e < 0.0:
        r -= 1.0
    return r


@njit(cache=True, inline="always")
def round_to_integer(y: float, rounding: int, u: float) -> float:
    """y rounded to an integer-valued float64 with rounding mode `rounding` (exact for any y).

    `u` is the uniform draw in [0, 1) used by stochastic rounding (floor(y + u)); other modes
    ignore it. Infinities come back unchanged.
    """
    if rounding == NEAREST_EVEN:
        return np.rint(y)
    if rounding == FLOOR:
        return np.floor(y)
    if rounding == TOWARD_ZERO:
        return np.trunc(y)
    if rounding == STOCHASTIC:
        return floor_of_sum(y, u)
    t = np.trunc(y)
    f = y - t  # exact: y and trunc(y) share sign and binade (or trunc(y) is 0)
    if f > 0.5:
        return t + 1.0
    if f < -0.5:
        return t - 1.0
    if f == 0.5:
        return t + 1.0
    if f == -0.5:
        return t - 1.0 if rounding == NEAREST_AWAY else t
    return t


@intrinsic
def _float64_bits(typingctx, x):
    """The IEEE-754 bit pattern of a float64 as an int64 (a register move, no memory)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_float64(typingctx, b):
    """The float64 whose IEEE-754 bit pattern is the int64 b."""
    if not isinstance(b, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def exponent_of(a: float) -> int:
    """floor(log2(a)) for a normal positive float64 a (-1023 for zeros and subnormals)."""
    return ((_float64_bits(a) >> 52) & 0x7FF) - 1023


@njit(cache=True, inline="always")
def pow2(k: int) -> float:
    """2.0**k for -1022 <= k <= 1023, built from its bit pattern."""
    return _bits_float64(np.int64(k + 1023) << 52)


@njit(cache=True, inline="always")
def by_rounding(loop, rounding: int, x, u, out, params: tuple):
    """loop(rounding, x, u, out, params), with the default nearest_even as a compile-time constant.

    Array kernels route through this so that Numba compiles a dedicated loop for the default
    mode, its per-element mode test folded away (about 3x faster), and one generic loop for the
    other modes (a loop per mode would triple the compile time).
    """
    if rounding == NEAREST_EVEN:
        return loop(NEAREST_EVEN, x, u, out, params)
    return loop(rounding, x, u, out, params)
