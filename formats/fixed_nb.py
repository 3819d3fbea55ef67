"""Numba scalar and array quantizers for fixed point: float64 in, integer code out.

The scalar `fixed_code` is public so that other Numba code (kernels/) can quantize one value to a
fixed-point code inside its own loops. Its parameters come from `FixedPoint.nb_params(overflow)`
and the rounding code from `Rounding.code`:

    code = fixed_code(x, *fmt.nb_params(overflow), rounding.code, u)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from formats.rounding_nb import (
    NEAREST_EVEN,
    STOCHASTIC,
    WRAP,
    by_rounding,
    round_to_integer,
)

_TINY = 5e-324  # stands in for a product x * 2^fl that underflowed: keeps sign and "not zero"


@njit(cache=True, inline="always")
def _rounded_code(x: float, scale: float, wrap_period: float, overflow: int, rounding: int,
                  u: float) -> float:
    """round(x * 2^fl) as an integer-valued float64, before overflow handling (exact)."""
    if overflow == WRAP:
        x = np.fmod(x, wrap_period)  # exact, keeps the sign: the code modulo 2^bits is unchanged
    y = x * scale  # exact unless it underflows, where only sign and non-zeroness matter
    if y == 0.0 and x != 0.0:
        y = math.copysign(_TINY, x)
    return round_to_integer(y, rounding, u)


@njit(cache=True, inline="always")
def _wrapped(r: float, lo: float, hi: float, modulus: float) -> float:
    """The integer r reduced modulo 2^bits into [lo, hi) (exact)."""
    m = np.fmod(r, modulus)
    if m >= hi:
        m -= modulus
    elif m < lo:
        m += modulus
    return m


@njit(cache=True, inline="always")
def fixed_code(
    x: float,
    scale: float,
    wrap_period: float,
    lo: float,
    hi: float,
    modulus: float,
    min_code: int,
    max_code: int,
    overflow: int,
    rounding: int,
    u: float,
) -> int:
    """The int64 code of x (float64) in a fixed-point format, exact for every finite x.

    Parameters (all plain scalars, from `FixedPoint.nb_params`): scale = 2^fl; wrap_period =
    2^(bits - fl), the value period of wrap-around; lo, hi = the code range [lo, hi) as exact
    floats (-2^(bits-1), 2^(bits-1) signed; 0, 2^bits unsigned); modulus = 2^bits; min_code,
    max_code = the codes saturation clamps to (min_code = -max_code for saturate_symmetric);
    overflow = `Overflow.code`; rounding = `Rounding.code`; u = uniform [0, 1) draw, used only by
    stochastic rounding. NaN gives min_code (callers reject NaN before).
    """
    r = _rounded_code(x, scale, wrap_period, overflow, rounding, u)
    if overflow == WRAP:
        return np.int64(_wrapped(r, lo, hi, modulus))
    if r >= hi:
        return max_code
    if not r >= lo:  # also catches NaN
        return min_code
    c = np.int64(r)
    return max(c, min_code)


@njit(cache=True, inline="always")
def _is_clamped_rint(rounding, overflow, min_code, max_code):
    """Whether `fixed_code` reduces to min(max(rint(x·2^fl), min_code), max_code): nearest-even
    into a saturating range that float64 holds exactly. The loops then vectorize; a NaN's
    result is garbage there, but NaNs are counted and rejected by the callers."""
    return (rounding == NEAREST_EVEN and overflow != WRAP
            and -(1 << 53) <= min_code and max_code <= (1 << 53))


@njit(cache=True, inline="always")
def _clamped_rint(x, scale, low, high):
    """The code of x by the `_is_clamped_rint` rule, as a float64."""
    return min(max(np.rint(x * scale), low), high)


@njit(cache=True, inline="always")
def _codes_loop(rounding, x, u, out, params):
    """codes[i] = the code of x[i]; with a non-empty `clipped`, also whether x[i] lay outside
    [min, max] (x < min exactly when x * 2^fl < min_code: the scaling is exact)."""
    scale, wrap_period, lo, hi, modulus, min_code, max_code, overflow = params
    codes, clipped = out
    mark = clipped.size > 0
    low = np.float64(min_code)
    high = np.float64(max_code)
    clamped_rint = _is_clamped_rint(rounding, overflow, min_code, max_code)
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        if clamped_rint:
            codes[i] = _clamped_rint(xi, scale, low, high)
        else:
            ui = u[i] if rounding == STOCHASTIC else 0.0
            codes[i] = fixed_code(xi, scale, wrap_period, lo, hi, modulus, min_code, max_code,
                                  overflow, rounding, ui)
        if mark:
            y = xi * scale
            clipped[i] = y > high or y < low
    return nan_count


@njit(cache=True, inline="always")
def _values_loop(rounding, x, u, out, params):
    scale, wrap_period, lo, hi, modulus, min_code, max_code, overflow, step = params
    low = np.float64(min_code)  # exact up to 53 bits; wider codes round like their values do
    high = np.float64(max_code)
    clamped_rint = _is_clamped_rint(rounding, overflow, min_code, max_code)
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        if clamped_rint:
            r = _clamped_rint(xi, scale, low, high)
        else:
            ui = u[i] if rounding == STOCHASTIC else 0.0
            r = _rounded_code(xi, scale, wrap_period, overflow, rounding, ui)
            if overflow == WRAP:
                r = _wrapped(r, lo, hi, modulus)
            else:
                r = min(max(r, low), high)
        out[i] = r * step + 0.0  # fixed point has no -0
    return nan_count


@njit(cache=True, nogil=True)
def fixed_codes_array(x, params, rounding, u, codes):
    """codes[i] = fixed_code(x[i], *params, rounding, u[i]) over flat arrays; returns the number
    of NaN inputs."""
    return by_rounding(_codes_loop, rounding, x, u, (codes, np.empty(0, np.bool_)), params)


@njit(cache=True, nogil=True)
def fixed_codes_clipped_array(x, params, rounding, u, codes, clipped):
    """`fixed_codes_array` that also marks in `clipped` the inputs outside [min, max] (which
    saturate); returns the number of NaN inputs."""
    return by_rounding(_codes_loop, rounding, x, u, (codes, clipped), params)


@njit(cache=True, nogil=True)
def fixed_values_array(x, params, rounding, u, step, out):
    """out[i] = fixed_code(x[i], *params, rounding, u[i]) * step over flat arrays; returns the
    number of NaN inputs."""
    return by_rounding(_values_loop, rounding, x, u, out, params + (step,))
