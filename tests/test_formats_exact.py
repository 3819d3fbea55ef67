"""Every format x rounding x overflow against exact references in fractions.Fraction / Python
ints, under hypothesis. The references enumerate each format's value set from its definition and
pick a neighbour by the rounding rule, so they share no code with the quantizers."""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from formats import Affine, FixedPoint, Minifloat, PowerOfTwo, RsimError, parse
from formats.fixed_nb import fixed_code
from formats.float_nb import round_float
from formats.modes import Overflow, Rounding

ROUNDINGS = [m.value for m in Rounding]
DETERMINISTIC = [m for m in ROUNDINGS if m != "stochastic"]
OVERFLOWS = [m.value for m in Overflow]
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# u for stochastic rounding: multiples of 2^-53 in [0, 1), as numpy's Generator.random draws
uniforms = st.integers(0, 2**53 - 1).map(lambda k: k / 2.0**53)


def pick(lower: Fraction, upper: Fraction, x: Fraction, rounding: str, u: float,
         lower_is_even: bool) -> Fraction:
    """Round x (lower < x < upper, two neighbours of a value set) by the rounding rule."""
    position = (x - lower) / (upper - lower)
    if rounding == "floor":
        return lower
    if rounding == "toward_zero":
        return lower if x > 0 else upper
    if rounding == "stochastic":
        return upper if position + Fraction(u) >= 1 else lower
    if position != Fraction(1, 2):
        return lower if position < Fraction(1, 2) else upper
    if rounding == "nearest_even":
        return lower if lower_is_even else upper
    if rounding == "nearest_away":
        return upper if x > 0 else lower
    return upper  # nearest_up


def round_integer(q: Fraction, rounding: str, u: float) -> int:
    n = math.floor(q)
    return n if q == n else int(pick(Fraction(n), Fraction(n + 1), q, rounding, u, n % 2 == 0))


# -- fixed point --------------------------------------------------------------------------------

def fixed_reference(fmt: FixedPoint, x: float, rounding: str, overflow: str, u: float) -> int:
    lo, hi = fmt.min_code, fmt.max_code
    if math.isinf(x):
        return hi if x > 0 else (lo if overflow == "saturate" or not fmt.signed else -hi)
    code = round_integer(Fraction(x) * Fraction(2) ** fmt.fl, rounding, u)
    if overflow == "wrap":
        return (code - lo) % (1 << fmt.bits) + lo
    if overflow == "saturate_symmetric" and fmt.signed:
        lo = -hi
    return min(max(code, lo), hi)


@st.composite
def fixed_cases(draw):
    fmt = FixedPoint(draw(st.integers(1, 12)), draw(st.integers(-6, 10)), draw(st.booleans()))
    step = 2.0 ** -fmt.fl
    near_grid = st.integers(-(1 << (fmt.bits + 2)), 1 << (fmt.bits + 2)).flatmap(
        lambda k: st.sampled_from([0.0, 0.25, 0.5, 0.75, 1e-9]).map(lambda f: (k + f) * step))
    wide = st.floats(-(2.0 ** (fmt.bits - fmt.fl + 2)), 2.0 ** (fmt.bits - fmt.fl + 2))
    x = draw(st.one_of(near_grid, wide, st.sampled_from([0.0, -0.0, 5e-324, -5e-324])))
    return fmt, x, draw(st.sampled_from(ROUNDINGS)), draw(st.sampled_from(OVERFLOWS)), \
        draw(uniforms)


@SETTINGS
@given(fixed_cases())
def test_fixed_point_equals_exact_integer_rounding(case) -> None:
    fmt, x, rounding, overflow, u = case
    expected = fixed_reference(fmt, x, rounding, overflow, u)
    code = fixed_code(x, *fmt.nb_params(overflow), Rounding(rounding).code, u)
    assert code == expected
    if rounding != "stochastic":
        assert fmt.encode([x], rounding, overflow)[0] == expected
        assert fmt.quantize([x], rounding, overflow)[0] == expected * 2.0 ** -fmt.fl


@SETTINGS
@given(fixed_cases())
def test_fixed_point_infinities_saturate(case) -> None:
    fmt, _, rounding, overflow, u = case
    assume(overflow != "wrap")
    for x in (math.inf, -math.inf):
        assert fmt.encode([x], rounding, overflow, rng=0)[0] == \
            fixed_reference(fmt, x, rounding, overflow, u)


# -- minifloat ----------------------------------------------------------------------------------

def minifloat_values(fmt: Minifloat) -> list[Fraction]:
    """Non-negative finite values by code order, from the definition; and the next value an
    unbounded exponent would add above max (where overflow starts)."""
    e_bits, m_bits, bias = fmt.exp_bits, fmt.man_bits, fmt.bias
    codes = range(1 << (e_bits + m_bits))
    if fmt.special == "ieee":
        codes = range(((1 << e_bits) - 1) << m_bits)
    elif fmt.special == "fn":
        codes = range((1 << (e_bits + m_bits)) - 1)
    values = []
    for code in codes:
        e, m = divmod(code, 1 << m_bits)
        if e == 0:
            value = Fraction(m, 1 << m_bits) * Fraction(2) ** (1 - bias) if fmt.subnormals else 0
        else:
            value = (1 + Fraction(m, 1 << m_bits)) * Fraction(2) ** (e - bias)
        values.append(Fraction(value))
    return values


def minifloat_reference(fmt: Minifloat, x: float, rounding: str, saturate: bool,
                        u: float) -> float:
    values = minifloat_values(fmt)
    grid = sorted(set(values))
    top = grid[-1]
    beyond = top + Fraction(2) ** (math.floor(math.log2(top)) - fmt.man_bits)
    even = {v: values.index(v) % 2 == 0 for v in grid}
    even[beyond] = not even[top]

    def overflowed() -> float:
        if saturate or fmt.special == "none" or rounding == "toward_zero" or (
                rounding == "floor" and x > 0):
            return math.copysign(float(top), x)
        return math.copysign(math.inf, x) if fmt.special == "ieee" else math.nan

    if math.isinf(x):
        return x if fmt.special == "ieee" and not saturate else overflowed()
    exact = Fraction(x)
    magnitude = abs(exact)
    if magnitude > beyond:
        return overflowed()
    signed = sorted({-v for v in grid} | set(grid) | {beyond, -beyond})
    i = bisect.bisect_left(signed, exact)
    if signed[i] == exact:
        result = exact
    else:
        lower, upper = signed[i - 1], signed[i]
        lower_even = even[abs(lower)]
        if lower_even and even[abs(upper)]:
            # 0 and the smallest normal of a format without subnormals both have even codes:
            # the tie goes to the smaller magnitude, whatever the sign
            lower_even = abs(lower) < abs(upper)
        result = pick(lower, upper, exact, rounding, u, lower_even)
    if abs(result) > top:
        return overflowed()
    if result == 0:
        return 0.0 if fmt.special == "fnuz" else math.copysign(0.0, x)
    return float(result)


@st.composite
def minifloat_cases(draw):
    e_bits, m_bits = draw(st.integers(1, 5)), draw(st.integers(0, 4))
    special = draw(st.sampled_from(["ieee", "fn", "fnuz", "none"]))
    bias = (1 << (e_bits - 1)) - 1 + draw(st.integers(-3, 3))
    try:
        fmt = Minifloat(e_bits, m_bits, bias, draw(st.booleans()), special)
    except RsimError:
        assume(False)
    grid = sorted(set(minifloat_values(fmt)))
    grid.append(grid[-1] + Fraction(2) ** (math.floor(math.log2(grid[-1])) - fmt.man_bits))
    i = draw(st.integers(0, len(grid) - 2))
    between = draw(st.sampled_from([0, Fraction(1, 2), Fraction(1, 4), Fraction(3, 4),
                                    Fraction(1, 2**20), 1 - Fraction(1, 2**20)]))
    near = draw(st.sampled_from([1.0, -1.0])) * float(grid[i] + between * (grid[i + 1] - grid[i]))
    wide = draw(st.floats(-4 * fmt.max, 4 * fmt.max))
    x = draw(st.sampled_from([near, wide, math.inf, -math.inf, 0.0, -0.0, 1e-300]))
    return fmt, x, draw(st.sampled_from(ROUNDINGS)), draw(st.booleans()), draw(uniforms)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                  math.copysign(1, b))


@pytest.mark.slow
@SETTINGS
@given(minifloat_cases())
@example((parse("float<1,1,bias=0,subnormals=false,special=fn>"), -1.0, "nearest_even", False,
          0.0))  # a tie between 0 and the smallest normal, both even codes
def test_minifloat_equals_nearest_neighbour_in_its_value_set(case) -> None:
    fmt, x, rounding, saturate, u = case
    overflow = "saturate" if saturate else None
    expected = minifloat_reference(fmt, x, rounding, saturate, u)
    got = round_float(x, *fmt.nb_params(overflow), Rounding(rounding).code, u)
    assert same(got, expected), (str(fmt), x, rounding, overflow, u, got, expected)
    if rounding != "stochastic":
        assert same(fmt.quantize([x], rounding, overflow)[0], expected)
        codes = fmt.encode([x], rounding, overflow)
        assert same(fmt.decode(codes)[0], expected)


# -- power of two -------------------------------------------------------------------------------

def pow2_reference(fmt: PowerOfTwo, x: float, rounding: str) -> float:
    magnitude = abs(Fraction(x)) if not math.isinf(x) else None
    sign = -1.0 if x < 0 else 1.0
    if magnitude == 0:
        return 0.0 if fmt.zero else 2.0 ** fmt.exp_min
    if magnitude is None:
        k = fmt.exp_max
    else:
        k = math.floor(math.log2(magnitude))
        while Fraction(2) ** k > magnitude:
            k -= 1
        while Fraction(2) ** (k + 1) <= magnitude:
            k += 1
        exact_power = magnitude == Fraction(2) ** k
        above_geometric_mean = magnitude ** 2 > Fraction(2) ** (2 * k + 1)
        if rounding.startswith("nearest") and above_geometric_mean:
            k += 1
        elif rounding == "toward_zero" and k < 0 and not exact_power:
            k += 1
    if k < fmt.exp_min:
        return 0.0 if fmt.zero else sign * 2.0 ** fmt.exp_min
    return sign * 2.0 ** min(k, fmt.exp_max)


@SETTINGS
@given(st.integers(-12, 4), st.integers(0, 8), st.booleans(),
       st.one_of(st.floats(-1e4, 1e4), st.sampled_from([0.0, -0.0, math.inf, -math.inf])),
       st.sampled_from(DETERMINISTIC), st.sampled_from([None, "saturate"]))
def test_power_of_two_rounds_exactly_in_the_log_domain(lo, width, zero, x, rounding,
                                                       overflow) -> None:
    fmt = PowerOfTwo(lo, lo + width, zero)
    assert fmt.quantize([x], rounding, overflow)[0] == pow2_reference(fmt, x, rounding)
    codes = fmt.encode([x], rounding, overflow)
    assert fmt.decode(codes)[0] == pow2_reference(fmt, x, rounding)


def test_power_of_two_geometric_mean_neighbours() -> None:
    """Just below and above 2^(k+1/2) (irrational, so never a tie)."""
    fmt = PowerOfTwo(-8, 8)
    for k in range(-6, 6):
        mean = math.sqrt(2.0) * 2.0**k
        below, above = math.nextafter(mean, 0), math.nextafter(mean, math.inf)
        if Fraction(mean) ** 2 > Fraction(2) ** (2 * k + 1):
            below, above = math.nextafter(below, 0), mean
        assert fmt.quantize([below, above]).tolist() == [2.0**k, 2.0 ** (k + 1)]


# -- integer affine -----------------------------------------------------------------------------

def affine_reference(fmt: Affine, x: float, rounding: str, overflow: str | None) -> int:
    lo, hi = fmt.base.min_code, fmt.base.max_code
    if overflow == "saturate_symmetric" and fmt.base.signed:
        lo = -hi
    if math.isinf(x):
        return hi if x > 0 else lo
    q = round_integer(Fraction(x) / Fraction(fmt.scale[0]), rounding, 0.0) + fmt.zero_point[0]
    return min(max(q, lo), hi)


@st.composite
def affine_cases(draw):
    base = draw(st.sampled_from(["int8", "uint8", "int4", "fixed<12,0>"]))
    scale = float(np.float32(draw(st.floats(1e-6, 1e3))))
    integer = parse(base)
    fmt = Affine(integer, scale, draw(st.integers(integer.min_code, integer.max_code)))
    k = draw(st.integers(-300, 300))
    near = (k + draw(st.sampled_from([0.0, 0.5, -0.5, 0.4999999, 1e-9]))) * scale
    x = draw(st.sampled_from([near, draw(st.floats(-1e4, 1e4)), math.inf, -math.inf, -0.0]))
    return fmt, x, draw(st.sampled_from(DETERMINISTIC)), \
        draw(st.sampled_from([None, "saturate", "saturate_symmetric"]))


@SETTINGS
@given(affine_cases())
def test_affine_code_equals_exact_quotient_rounding(case) -> None:
    fmt, x, rounding, overflow = case
    expected = affine_reference(fmt, x, rounding, overflow)
    assert fmt.encode([x], rounding, overflow)[0] == expected
    value = (expected - fmt.zero_point[0]) * fmt.scale[0]
    assert fmt.quantize([x], rounding, overflow)[0] == value


# -- MX block formats ---------------------------------------------------------------------------

def _scaled(v: float, exponent: int) -> float:
    """v / 2^exponent as a float64; a nonzero quotient that underflows float64 keeps its sign as
    the smallest subnormal, which every element format rounds exactly as the true quotient."""
    quotient = Fraction(v) / Fraction(2) ** exponent
    result = float(quotient)
    return math.copysign(5e-324, quotient) if result == 0 and quotient != 0 else result


@pytest.mark.slow
@SETTINGS
@given(st.sampled_from(["fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2fn", "fp6_e2m3fn", "fp4_e2m1fn"]),
       st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4), st.integers(-20, 20),
       st.sampled_from(ROUNDINGS), st.integers(0, 2**32))
@example("fp8_e4m3fn", [0.0, 0.0, 512.0, -5e-324], 0, "floor", 0)  # the quotient underflows
def test_mx_block_equals_exact_scale_and_saturating_element_rounding(element, values, shift,
                                                                     rounding, seed) -> None:
    """OCP MX: X = 2^(floor(log2 max|v|) - emax_elem), elements round(v / X) saturating."""
    fmt = parse(f"mx<{element},block=4>")
    x = np.array(values) * 2.0**shift
    u = np.random.default_rng(seed).random(4)
    amax = max(abs(Fraction(v)) for v in x)
    if amax == 0:
        exponent = -127
    else:
        exponent = math.floor(math.log2(amax))
        while Fraction(2) ** exponent > amax:
            exponent -= 1
        while Fraction(2) ** (exponent + 1) <= amax:
            exponent += 1
        exponent = max(exponent - fmt.emax_elem, -127)
    expected = [minifloat_reference(fmt.element, _scaled(v, exponent), rounding, True, w)
                * 2.0**exponent for v, w in zip(x, u)]
    got = fmt.quantize(x, rounding, rng=np.random.default_rng(seed))
    assert all(same(a + 0.0, b + 0.0) for a, b in zip(got, expected)), (got, expected)
