"""Numba scalar and array quantizers for minifloats: float64 in, minifloat value or bit pattern out.

The scalar `round_float` is public so that other Numba code (kernels/) can round one float64 (a
product, a running sum) to a minifloat inside its own loops. Its format parameters come from
`Minifloat.nb_params(overflow)` and the rounding code from `Rounding.code`:

    v = round_float(x, *fmt.nb_params(overflow), rounding.code, u)

The result is correctly rounded from the float64 input (one rounding, no double rounding).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from formats.rounding_nb import (FLOOR, STOCHASTIC, TOWARD_ZERO, by_rounding, exponent_of,
                                 floor_of_sum, pow2, round_to_integer)

OVERFLOW_SATURATE = 0  # clamp to +-max (formats without inf/NaN, or overflow="saturate")
OVERFLOW_INF = 1  # IEEE: +-inf
OVERFLOW_NAN = 2  # fn / fnuz: NaN

_TINY = 5e-324


@njit(cache=True, inline="always")
def _overflowed(x: float, max_value: float, overflow_rule: int, rounding: int) -> float:
    """The result for an x whose rounded magnitude exceeds max_value.

    As in IEEE 754, rounding toward zero (and floor of a positive x) gives +-max instead of
    inf/NaN; every other mode gives the format's overflow value.
    """
    if overflow_rule == OVERFLOW_SATURATE or rounding == TOWARD_ZERO or (
            rounding == FLOOR and x > 0.0):
        return math.copysign(max_value, x)
    if overflow_rule == OVERFLOW_INF:
        return math.copysign(np.inf, x)
    return np.nan


@njit(cache=True, inline="always")
def round_float(
    x: float,
    man_bits: int,
    min_exp: int,
    max_exp: int,
    max_value: float,
    subnormals: bool,
    overflow_rule: int,
    signed_zero: bool,
    rounding: int,
    u: float,
) -> float:
    """x (float64) rounded to a minifloat, returned as float64.

    Parameters (plain scalars, from `Minifloat.nb_params`): man_bits = M; min_exp = 1 - bias,
    the exponent of the smallest normal binade; max_exp = exponent of the largest binade;
    max_value = largest finite value; subnormals = whether the binade below min_exp has
    subnormals (else it rounds to 0 or +-2^min_exp); overflow_rule = OVERFLOW_SATURATE |
    OVERFLOW_INF | OVERFLOW_NAN; signed_zero = False for fnuz (no -0); rounding =
    `Rounding.code`; u = uniform [0, 1) draw for stochastic rounding (ignored otherwise).
    NaN in gives NaN out (formats without NaN reject it in the Python wrapper).
    """
    a = abs(x)
    e = exponent_of(a)  # a in [2^e, 2^(e+1)); -1023 for 0 and float64 subnormals; 1024 inf/NaN
    if e > max_exp:
        if x != x or (a == np.inf and overflow_rule == OVERFLOW_INF):
            return x
        return _overflowed(x, max_value, overflow_rule, rounding)
    if e >= min_exp:
        q = e - man_bits
    elif subnormals:
        q = min_exp - man_bits
    else:
        q = min_exp
    y = x * pow2(-q)  # exact: only x far below the format's range can underflow here
    if y == 0.0 and a != 0.0:
        y = math.copysign(_TINY, x)
    r = math.copysign(round_to_integer(y, rounding, u), y)  # a zero keeps the sign of x
    v = r * pow2(q)
    if abs(v) > max_value:
        return _overflowed(x, max_value, overflow_rule, rounding)
    return v if signed_zero else v + 0.0  # fnuz: -0 + 0 = +0


@njit(cache=True, inline="always")
def float_bits(v: float, negative: bool, man_bits: int, bias: int, min_exp: int,
               sign_bit: int, inf_code: int, nan_code: int) -> int:
    """Bit pattern of v, a value of the format (NaN and +-inf included).

    negative = the sign bit to set (for a NaN: the input's); sign_bit = 1 << (E + M);
    inf_code / nan_code = the positive patterns of inf and NaN (fnuz: nan_code = sign_bit, its
    only NaN; -1 when the format has none).
    """
    sign = sign_bit if negative else 0
    if v != v:
        return nan_code | sign if nan_code != sign_bit else nan_code
    a = abs(v)
    if a == np.inf:
        return inf_code | sign
    if a == 0.0:
        return sign
    e = math.frexp(a)[1] - 1
    if e < min_exp:
        return sign | np.int64(math.ldexp(a, man_bits - min_exp))
    mantissa = np.int64(math.ldexp(a, man_bits - e)) - (np.int64(1) << man_bits)
    return sign | ((np.int64(e + bias) << man_bits) + mantissa)


@njit(cache=True, inline="always")
def _values_loop(rounding, x, u, out, params):
    man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero = params
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        ui = u[i] if rounding == STOCHASTIC else 0.0
        out[i] = round_float(xi, man_bits, min_exp, max_exp, max_value, subnormals,
                             overflow_rule, signed_zero, rounding, ui)
    return nan_count


@njit(cache=True, inline="always")
def _codes_loop(rounding, x, u, codes, params):
    (man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero,
     bias, sign_bit, inf_code, nan_code) = params
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        ui = u[i] if rounding == STOCHASTIC else 0.0
        v = round_float(xi, man_bits, min_exp, max_exp, max_value, subnormals,
                        overflow_rule, signed_zero, rounding, ui)
        negative = np.signbit(v) if v == v else np.signbit(xi)
        codes[i] = float_bits(v, negative, man_bits, bias, min_exp, sign_bit, inf_code, nan_code)
    return nan_count


@njit(cache=True)
def float_values_array(x, params, rounding, u, out):
    """out[i] = round_float(x[i], *params, rounding, u[i]); returns the number of NaN inputs."""
    return by_rounding(_values_loop, rounding, x, u, out, params)


@njit(cache=True)
def float_codes_array(x, params, bit_params, rounding, u, codes):
    """codes[i] = bit pattern of round_float(x[i], ...); returns the number of NaN inputs."""
    return by_rounding(_codes_loop, rounding, x, u, codes, params + bit_params)


@njit(cache=True)
def round_ristretto_minifloat(x: float, exp_bits: int, man_bits: int, rounding: int,
                              u: float) -> float:
    """Ristretto's Trim2MiniFloat (GPU semantics) of one value, returned as float64.

    x is first cast to float32 (Ristretto's blobs are float32); every exponent code is a normal
    number with bias 2^(E-1)-1; anything below 2^-bias (and float32 zeros/denormals) becomes +0 by
    truncation; exponents above the top code saturate to +-(2-2^-M)*2^(2^E-1-bias); the mantissa is
    rounded (nearest_even = GPU rint, nearest_away = CPU round, stochastic = floor(m + u) on the
    magnitude) and a carry is not renormalised (so 2^(2^E-bias) can appear). The result is
    rounded to float32 as Ristretto stores it (E=8's top binade becomes +-inf). NaN stays NaN.
    """
    xf = np.float64(np.float32(x))
    if xf != xf:
        return xf
    a = abs(xf)
    if a < 1.1754943508222875e-38:  # float32 exponent field 0: zero or float32 denormal
        return 0.0
    bias = (1 << (exp_bits - 1)) - 1
    top = (1 << exp_bits) - 1
    if a == np.inf:
        e = 128
        fraction = 0.0
    else:
        m, e2 = math.frexp(a)
        e = e2 - 1
        fraction = 2.0 * m - 1.0  # exact: the 23 stored mantissa bits as a value in [0, 1)
    e_new = e + bias
    if e_new < 0:
        return 0.0
    if e_new > top:
        v = math.ldexp(2.0 - math.ldexp(1.0, -man_bits), top - bias)
    else:
        scaled = math.ldexp(fraction, man_bits)
        if rounding == STOCHASTIC:
            r = floor_of_sum(scaled, u)
        else:
            r = round_to_integer(scaled, rounding, 0.0)
        v = math.ldexp(1.0 + math.ldexp(r, -man_bits), e)
    return np.float64(np.float32(math.copysign(v, xf)))


@njit(cache=True)
def ristretto_values_array(x, exp_bits, man_bits, rounding, u, out):
    """out[i] = round_ristretto_minifloat(x[i], ...); returns the number of NaN inputs."""
    stochastic = rounding == STOCHASTIC
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        if xi != xi:
            nan_count += 1
        ui = u[i] if stochastic else 0.0
        out[i] = round_ristretto_minifloat(xi, exp_bits, man_bits, rounding, ui)
    return nan_count
