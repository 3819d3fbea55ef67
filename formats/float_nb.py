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

from formats.rounding_nb import (FLOOR, NEAREST_EVEN, STOCHASTIC, TOWARD_ZERO, _bits_float64,
                                 _float64_bits, by_rounding, exponent_of, floor_of_sum, pow2,
                                 round_to_integer)

OVERFLOW_SATURATE = 0  # clamp to +-max (formats without inf/NaN, or overflow="saturate")
OVERFLOW_INF = 1  # IEEE: +-inf
OVERFLOW_NAN = 2  # fn / fnuz: NaN

_TINY = 5e-324
_MAGNITUDE_MASK = 0x7FFF_FFFF_FFFF_FFFF
_EXPONENT_MASK = 0x7FF0_0000_0000_0000
_SIGN_BIT = -0x8000_0000_0000_0000
_BLOCK = 256  # values rounded by the vectorised shortcut before checking they all fit


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
def magnitude_bits(x: float) -> int:
    """The float64 bit pattern of |x| as an int64: ordered like |x|, with inf and NaN above
    every finite value (so an integer max over them vectorises where a float max would not)."""
    return _float64_bits(x) & _MAGNITUDE_MASK


@njit(cache=True, inline="always")
def nearest_even_shortcut_applies(man_bits: int, max_exp: int) -> bool:
    """Whether the shortcut works for the format at all: it keeps at least one mantissa bit
    (`nearest_even_limit` reads the tie rule at max from max's last mantissa bit), drops at
    least two of float64's, and its largest constant 2^(max_exp - man_bits + 52) is a float64."""
    return 0 < man_bits < 51 and max_exp - man_bits + 52 <= 1023


@njit(cache=True, inline="always")
def nearest_even_limit(man_bits: int, max_value: float) -> int:
    """The largest float64 magnitude, as bits with the sign cleared, that rounds to nearest-even
    without exceeding max_value: max_value plus half a unit in its last place, minus one bit
    pattern when the tie there would round up (max_value's last mantissa bit is odd).
    Bigger magnitudes, infinities and NaNs (as bits) overflow."""
    top = _float64_bits(max_value)
    shift = 52 - man_bits
    return top + ((np.int64(1) << shift) >> 1) - ((top >> shift) & 1)


@njit(cache=True, inline="always")
def round_nearest_even_in_range(x: float, man_bits: int, min_exp: int, signed_zero: bool) -> float:
    """round_float(x, ..., NEAREST_EVEN) without branches, so that loops over it vectorise.

    Valid when `nearest_even_shortcut_applies`, the magnitude bits of x are at most
    `nearest_even_limit` and x is 0, >= 2^min_exp in magnitude or the format has subnormals.
    The classic add-and-subtract rounding: with |x| in binade 2^E (E at least min_exp, whose
    step also holds below it), c = 2^(E + 52 - man_bits) puts |x| + c in [c, 2c), where float64
    steps are 2^(E - man_bits), the format's step there; so float64's own nearest-even addition
    rounds |x| correctly (c is a multiple of 2 steps, so "even" agrees), and subtracting c is
    exact. The sign goes back on last: a zero keeps the sign of x, as in round_float.
    """
    magnitude = abs(x)
    binade = max(_float64_bits(magnitude) & _EXPONENT_MASK, np.int64(min_exp + 1023) << 52)
    c = _bits_float64(binade + (np.int64(52 - man_bits) << 52))
    rounded = (magnitude + c) - c
    value = _bits_float64(_float64_bits(rounded) | (_float64_bits(x) & _SIGN_BIT))
    return value if signed_zero else value + 0.0  # fnuz: -0 + 0 = +0


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
    Nearest-even takes the branch-free `round_nearest_even_in_range` wherever it applies.
    """
    if rounding == NEAREST_EVEN and nearest_even_shortcut_applies(man_bits, max_exp):
        magnitude = magnitude_bits(x)
        if magnitude <= nearest_even_limit(man_bits, max_value) and (
                subnormals or magnitude == 0 or magnitude >= _float64_bits(pow2(min_exp))):
            return round_nearest_even_in_range(x, man_bits, min_exp, signed_zero)
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
    """out[i] = round_float(x[i], ...) block by block; nearest-even into a format with
    subnormals first rounds a block with the branch-free `round_nearest_even_in_range` (a loop
    that vectorises) and redoes it element by element only if a magnitude there is beyond
    `nearest_even_limit` (overflow, inf or NaN). Returns the number of NaN inputs."""
    man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero = params
    shortcut = (rounding == NEAREST_EVEN and subnormals
                and nearest_even_shortcut_applies(man_bits, max_exp))
    limit = nearest_even_limit(man_bits, max_value)
    nan_count = 0
    for start in range(0, x.size, _BLOCK):
        stop = min(start + _BLOCK, x.size)
        if shortcut:
            peak = 0  # the largest magnitude as float64 bits (an integer max, so it vectorises)
            for i in range(start, stop):
                xi = np.float64(x[i])
                peak = max(peak, magnitude_bits(xi))
                out[i] = round_nearest_even_in_range(xi, man_bits, min_exp, signed_zero)
            if peak <= limit:
                continue
        for i in range(start, stop):
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


@njit(cache=True, nogil=True)
def float_values_array(x, params, rounding, u, out):
    """out[i] = round_float(x[i], *params, rounding, u[i]); returns the number of NaN inputs."""
    return by_rounding(_values_loop, rounding, x, u, out, params)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
