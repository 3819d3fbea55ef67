"""Numba scalar and array quantizers for fixed point: float64 in, integer code out.

The scalar `fixed_code` is public so that other Numba code (kernels/) can quantize one value to a
fixed-point code inside its own loops. Its parameters come from `FixedPoint.nb_params(overflow)`
and the rounding code from `Rounding.code`:

    code = fixed_code(x, *fmt.nb_params(overflow), rounding.code, u)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from formats.rounding_nb import STOCHASTIC, WRAP, round_to_integer

_TINY = 5e-324  # stands in for a product x * 2^fl that underflowed: keeps sign and "not zero"


@njit(cache=True)
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
    if overflow == WRAP:
        x = np.fmod(x, wrap_period)  # exact, keeps the sign: the code modulo 2^bits is unchanged
    y = x * scale  # exact unless it underflows, where only sign and non-zeroness matter
    if y == 0.0 and x != 0.0:
        y = math.copysign(_TINY, x)
    r = round_to_integer(y, rounding, u)
    if overflow == WRAP:
        m = np.fmod(r, modulus)
        if m >= hi:
            m -= modulus
        elif m < lo:
            m += modulus
        return np.int64(m)
    if r >= hi:
        return max_code
    if not r >= lo:  # also catches NaN
        return min_code
    c = np.int64(r)
    return min_code if c < min_code else c


@njit(cache=True, parallel=True)
def fixed_codes_array(x, params, rounding, u, codes):
    """codes[i] = fixed_code(x[i], ...) over flat arrays; returns the number of NaN inputs."""
    scale, wrap_period, lo, hi, modulus, min_code, max_code, overflow = params
    stochastic = rounding == STOCHASTIC
    nan_count = 0
    for i in prange(x.size):
        xi = np.float64(x[i])
        if xi != xi:
            nan_count += 1
        ui = u[i] if stochastic else 0.0
        codes[i] = fixed_code(xi, scale, wrap_period, lo, hi, modulus, min_code, max_code,
                              overflow, rounding, ui)
    return nan_count


@njit(cache=True, parallel=True)
def fixed_values_array(x, params, rounding, u, step, out):
    """out[i] = fixed_code(x[i], ...) * step over flat arrays; returns the number of NaN inputs."""
    scale, wrap_period, lo, hi, modulus, min_code, max_code, overflow = params
    stochastic = rounding == STOCHASTIC
    nan_count = 0
    for i in prange(x.size):
        xi = np.float64(x[i])
        if xi != xi:
            nan_count += 1
        ui = u[i] if stochastic else 0.0
        c = fixed_code(xi, scale, wrap_period, lo, hi, modulus, min_code, max_code,
                       overflow, rounding, ui)
        out[i] = c * step
    return nan_count
