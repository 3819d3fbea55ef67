"""Minifloats against ml_dtypes (standard small floats) and apytypes (arbitrary IEEE-like ones),
and Ristretto's minifloat against a bit-field re-implementation of ristretto-facts.md §2b.

ml_dtypes rounds twice when fed float64, so it gets float32 inputs (exact in float64 for us).
apytypes reserves the top exponent for inf/NaN, so it only checks special=ieee formats.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from numba import njit

from formats import Minifloat, RistrettoMinifloat, RsimError, parse
from formats.float_nb import round_float
from formats.modes import Rounding

VALUES_PER_CASE = 1_000_000
# Inputs deliberately overflow float32/float16 casts (that is what the references must handle).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast",
                                        "ignore:invalid value encountered in cast")

ML_DTYPES = {
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "fp8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "fp8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "fp6_e3m2fn": ml_dtypes.float6_e3m2fn,
    "fp6_e2m3fn": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1fn": ml_dtypes.float4_e2m1fn,
}


def _finite_values(fmt: Minifloat) -> np.ndarray:
    """Every finite value of a format up to 16 bits, sorted, from our own decoder."""
    values = fmt.decode(np.arange(1 << fmt.bits))
    return np.unique(values[np.isfinite(values)])


def _float32_inputs(fmt: Minifloat, n: int, rng: np.random.Generator) -> np.ndarray:
    """Log-uniform magnitudes from below the smallest subnormal to beyond max, exact midpoints
    between neighbours (ties), the values themselves, +-0, +-inf and NaN (if the format has it)."""
    lo, hi = np.log2(fmt.smallest_positive) - 3, np.log2(fmt.max) + 3
    x = np.exp2(rng.uniform(lo, hi, n)) * rng.choice([-1.0, 1.0], n)
    grid = _finite_values(fmt)
    midpoints = (grid[:-1] + grid[1:]) / 2
    picks = rng.integers(0, midpoints.size, n // 8)
    x[: picks.size] = midpoints[picks] * rng.choice([-1.0, 1.0], picks.size)
    x[picks.size: 2 * picks.size] = grid[rng.integers(0, grid.size, picks.size)]
    top = float(grid[-1])
    specials = [0.0, -0.0, np.inf, -np.inf, top, -top, top * 1.0625, top * 2, 1e30, -1e30]
    x[2 * picks.size: 2 * picks.size + len(specials)] = specials
    if fmt.has_nan:
        x[-3:] = np.nan
    return x.astype(np.float32)


def _same(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Elementwise bit-equal values: equal with equal sign (so +0 != -0), or both NaN."""
    both_nan = np.isnan(ours) & np.isnan(ref)
    return both_nan | ((ours == ref) & (np.signbit(ours) == np.signbit(ref)))


@pytest.mark.parametrize("name", list(ML_DTYPES))
def test_standard_small_floats_match_ml_dtypes_bit_for_bit(name: str) -> None:
    fmt = parse(name)
    dtype = ML_DTYPES[name]
    x = _float32_inputs(fmt, VALUES_PER_CASE, np.random.default_rng(len(name)))
    reference = x.astype(dtype)
    ref_values = reference.astype(np.float64)
    values = fmt.quantize(x.astype(np.float64))
    bad = ~_same(values, ref_values)
    assert not bad.any(), f"{name}: {bad.sum()} mismatches, x={x[bad][:4]}, " \
                          f"ours={values[bad][:4]}, ml_dtypes={ref_values[bad][:4]}"
    ref_codes = reference.view(np.uint16 if fmt.bits > 8 else np.uint8).astype(np.int64)
    ref_codes &= (1 << fmt.bits) - 1  # fp6/fp4 are stored in a byte
    codes = fmt.encode(x)
    not_nan = ~np.isnan(ref_values)
    np.testing.assert_array_equal(codes[not_nan], ref_codes[not_nan])
    assert np.isnan(fmt.decode(codes[~not_nan])).all()
    np.testing.assert_array_equal(fmt.quantize(x), ref_values.astype(np.float32))


@pytest.mark.parametrize("name", list(ML_DTYPES))
def test_decoding_every_code_matches_ml_dtypes(name: str) -> None:
    fmt = parse(name)
    codes = np.arange(1 << fmt.bits)
    storage = np.uint16 if fmt.bits > 8 else np.uint8
    reference = codes.astype(storage).view(ML_DTYPES[name]).astype(np.float64)
    assert _same(fmt.decode(codes), reference).all()
    finfo = ml_dtypes.finfo(ML_DTYPES[name])
    assert (fmt.max, fmt.smallest_normal, fmt.smallest_positive, fmt.eps) == (
        float(finfo.max), float(finfo.smallest_normal), float(finfo.smallest_subnormal),
        float(finfo.eps))


apy = pytest.importorskip("apytypes")

APY_MODES = {
    "nearest_even": "TIES_EVEN",
    "nearest_away": "TIES_AWAY",
    "nearest_up": "TIES_POS",
    "floor": "TO_NEG",
    "toward_zero": "TO_ZERO",
}


def _float64_inputs(fmt: Minifloat, n: int, rng: np.random.Generator) -> np.ndarray:
    """float64 values: on a grid 4 bits finer than the format (ties and near-ties), with full
    53-bit mantissas, across subnormals and overflow, plus +-0, +-inf and NaN."""
    exponents = rng.integers(fmt.min_exp - fmt.man_bits - 3, fmt.max_exp + 3, n)
    fine = rng.integers(0, 1 << (fmt.man_bits + 4), n) / float(1 << (fmt.man_bits + 4))
    full = rng.random(n)
    mantissa = np.where(rng.random(n) < 0.5, fine, full)
    x = np.ldexp(1.0 + mantissa, exponents) * rng.choice([-1.0, 1.0], n)
    x[:7] = [0.0, -0.0, np.inf, -np.inf, np.nan, fmt.max, -fmt.max]
    return x


def _apytypes(x: np.ndarray, fmt: Minifloat, mode: str):
    """apytypes' rounding of x to fmt with `mode`.

    from_float is correct but ignores every quantization mode (always ties to even); cast
    honours the mode, so other modes hold x exactly as an (11, 52) array and cast it.
    """
    if mode == "nearest_even":
        return apy.APyFloatArray.from_float(x, exp_bits=fmt.exp_bits, man_bits=fmt.man_bits,
                                            bias=fmt.bias)
    wide = apy.APyFloatArray.from_float(x, exp_bits=11, man_bits=52)
    return wide.cast(exp_bits=fmt.exp_bits, man_bits=fmt.man_bits, bias=fmt.bias,
                     quantization=getattr(apy.QuantizationMode, APY_MODES[mode]))


def _outside_apytypes_cast_bug(x: np.ndarray, fmt: Minifloat) -> np.ndarray:
    """apytypes 0.5.1's cast turns a subnormal that rounds up into the smallest normal into 0.
    Inputs in that top subnormal interval are left to the exact reference tests."""
    largest_subnormal = fmt.smallest_normal - fmt.smallest_positive
    magnitude = np.abs(x)
    return ~((magnitude > largest_subnormal) & (magnitude < fmt.smallest_normal))


@pytest.mark.parametrize("exp_bits", range(2, 9))
def test_ieee_like_minifloats_match_apytypes_for_every_mantissa_width(exp_bits: int) -> None:
    """E 2..8 x M 1..10 with round to nearest even; 1e6 values per E (1e5 per format)."""
    rng = np.random.default_rng(exp_bits)
    for man_bits in range(1, 11):
        fmt = Minifloat(exp_bits, man_bits)
        x = _float64_inputs(fmt, VALUES_PER_CASE // 10, rng)
        expected = _apytypes(x, fmt, "nearest_even").to_numpy()
        ours = fmt.quantize(x)
        bad = ~_same(ours, expected)
        assert not bad.any(), f"{fmt}: x={x[bad][:4]} ours={ours[bad][:4]} apy={expected[bad][:4]}"


@pytest.mark.parametrize("rounding", list(APY_MODES))
def test_every_rounding_mode_matches_apytypes(rounding: str) -> None:
    """Directed and tie-breaking modes, overflow included (IEEE: toward zero saturates)."""
    rng = np.random.default_rng(len(rounding))
    formats = [Minifloat(5, 10), Minifloat(4, 3), Minifloat(8, 7), Minifloat(3, 4),
               Minifloat(2, 1), Minifloat(6, 5), Minifloat(5, 2), Minifloat(7, 9),
               Minifloat(4, 3, bias=9), Minifloat(5, 4, bias=3)]
    for fmt in formats:
        x = _float64_inputs(fmt, VALUES_PER_CASE // len(formats), rng)
        x = x[_outside_apytypes_cast_bug(x, fmt)]
        expected = _apytypes(x, fmt, rounding).to_numpy()
        ours = fmt.quantize(x, rounding)
        bad = ~_same(ours, expected)
        assert not bad.any(), f"{fmt} {rounding}: x={x[bad][:4]} ours={ours[bad][:4]} " \
                              f"apy={expected[bad][:4]}"


def test_bit_patterns_match_apytypes_to_bits() -> None:
    rng = np.random.default_rng(3)
    for fmt in (Minifloat(4, 3), Minifloat(5, 2), Minifloat(3, 6, bias=2)):
        x = _float64_inputs(fmt, 5000, rng)
        x = x[~np.isnan(x)]
        patterns = _apytypes(x, fmt, "nearest_even").to_bits()
        np.testing.assert_array_equal(fmt.encode(x), np.array(patterns, dtype=np.int64))


def test_no_double_rounding_from_float64() -> None:
    """ml_dtypes gets these wrong from float64 (peer notes §4.2); we round once."""
    assert parse("bf16").quantize([1 + 2**-8 + 2**-40])[0] == 1.0078125
    assert parse("fp8_e4m3fn").quantize([1 + 2**-4 + 2**-40])[0] == 1.125


def test_overflow_follows_the_special_value_rule_or_saturates_on_request() -> None:
    x = [1e6, -1e6, np.inf]
    assert parse("fp16").quantize(x).tolist() == [np.inf, -np.inf, np.inf]
    assert np.isnan(parse("fp8_e4m3fn").quantize(x)).all()
    assert np.isnan(parse("fp8_e5m2fnuz").quantize(x)).all()
    assert parse("fp4_e2m1fn").quantize(x).tolist() == [6.0, -6.0, 6.0]
    assert parse("fp8_e4m3fn").quantize(x, overflow="saturate").tolist() == [448, -448, 448]
    assert parse("fp16").quantize(x, overflow="saturate").tolist() == [65504, -65504, 65504]
    with pytest.raises(RsimError, match="wrap"):
        parse("fp16").quantize(x, overflow="wrap")


def test_fnuz_has_no_negative_zero_and_one_nan_code() -> None:
    fmt = parse("fp8_e4m3fnuz")
    assert not np.signbit(fmt.quantize([-0.0, -1e-9])).any()
    assert fmt.encode([np.nan]).tolist() == [0x80]


def test_formats_without_subnormals_round_below_the_smallest_normal_to_zero_or_it() -> None:
    fmt = parse("float<4,3,subnormals=false>")
    tiny = fmt.smallest_normal
    x = [tiny * 0.49, tiny * 0.5, tiny * 0.51, -tiny * 0.75]
    assert fmt.quantize(x).tolist() == [0.0, 0.0, tiny, -tiny]
    assert fmt.smallest_positive == tiny


def _ristretto_reference(x32: np.ndarray, exp_bits: int, man_bits: int,
                         ties_away: bool) -> np.ndarray:
    """ristretto-facts.md §2b Trim2MiniFloat (GPU), vectorised on float32 bit fields."""
    bits = x32.view(np.uint32).astype(np.int64)
    negative = bits >> 31 == 1
    e_field = (bits >> 23) & 0xFF
    mantissa = (bits & 0x7FFFFF).astype(np.float64) / 2.0 ** (23 - man_bits)
    bias = 2 ** (exp_bits - 1) - 1
    e_new = e_field - 127 + bias
    rounded = np.floor(mantissa + 0.5) if ties_away else np.rint(mantissa)
    value = (1 + rounded / 2.0**man_bits) * np.exp2((e_new - bias).astype(np.float64))
    saturated = (2 - 2.0**-man_bits) * 2.0 ** (2**exp_bits - 1 - bias)
    value = np.where(e_new > 2**exp_bits - 1, saturated, value)
    value = np.where((e_field == 0) | (e_new < 0), 0.0, value)
    return np.where(negative & (value != 0), -value, value).astype(np.float32)


@pytest.mark.parametrize("exp_bits,man_bits", [(4, 3), (5, 10), (3, 2), (8, 7), (6, 0), (2, 5)])
def test_ristretto_minifloat_matches_the_bit_field_algorithm(exp_bits: int, man_bits: int) -> None:
    fmt = RistrettoMinifloat(exp_bits, man_bits)
    rng = np.random.default_rng(exp_bits * 16 + man_bits)
    n = VALUES_PER_CASE // 2
    span = min(2.0**exp_bits + 2, 130.0)  # float32's own range bounds E = 8
    exponent = np.floor(rng.uniform(-span, span, n))
    fine = rng.integers(0, 1 << (man_bits + 2), n) / float(1 << (man_bits + 2)) + 1
    mantissa = np.where(np.arange(n) < n // 4, fine, 1 + rng.random(n))  # a quarter on ties
    x = (np.ldexp(mantissa, exponent.astype(np.int32)) * rng.choice([-1.0, 1.0], n))
    x = x.astype(np.float32)
    x[-6:] = [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40]
    for rounding, away in (("nearest_even", False), ("nearest_away", True)):
        expected = _ristretto_reference(x, exp_bits, man_bits, away)
        ours = fmt.quantize(x, rounding)
        bad = ~_same(ours, expected)
        assert not bad.any(), f"{fmt} {rounding}: x={x[bad][:4]} ours={ours[bad][:4]} " \
                              f"ref={expected[bad][:4]}"


def test_ristretto_worked_examples() -> None:
    """ristretto-facts.md §2b: E=4, M=3 and E=5, M=10."""
    e4m3 = parse("ristretto_minifloat<4,3>")
    assert (e4m3.max, e4m3.smallest_positive) == (480.0, 0.0078125)
    assert e4m3.quantize([0.0078, 300, 500, 600, -600]).tolist() == [0, 288, 512, 480, -480]
    e5m10 = parse("ristretto_minifloat<5,10>")
    assert (e5m10.max, e5m10.smallest_positive) == (131008.0, 2.0**-15)
    assert e5m10.quantize([70000])[0] == 70016


def test_ristretto_cpu_and_gpu_tie_rules_differ_only_on_ties() -> None:
    fmt = parse("ristretto_minifloat<4,3>")
    tie = 1 + 2**-4  # halfway between 1.0 and 1.125
    assert fmt.quantize([tie, -tie], "nearest_even").tolist() == [1.0, -1.0]
    assert fmt.quantize([tie, -tie], "nearest_away").tolist() == [1.125, -1.125]
    with pytest.raises(RsimError, match="nearest_even .*nearest_away .*stochastic"):
        fmt.quantize([1.0], "floor")


def test_ristretto_cpu_early_return_bug_is_not_reproduced() -> None:
    """Ristretto's CPU loop stops at the first zero and leaves later elements unquantized."""
    fmt = parse("ristretto_minifloat<4,3>")
    assert fmt.quantize([0.0, 300.0, 1e-9, 600.0]).tolist() == [0.0, 288.0, 0.0, 480.0]


def test_ristretto_codes_are_signed_ordinals_that_decode_back() -> None:
    fmt = parse("ristretto_minifloat<4,3>")
    x = np.array([0.0, 0.0078125, 300, 500, -600])
    codes = fmt.encode(x)
    assert codes.tolist() == [0, 1, 122, 129, -128]
    np.testing.assert_array_equal(fmt.decode(codes), fmt.quantize(x))
    wide = parse("ristretto_minifloat<8,23>")  # 2^32 + 3 values: ordinals come from a formula
    y = np.array([1.0, -3e38, 1e-30, 2.0**-126])
    np.testing.assert_array_equal(wide.decode(wide.encode(y)), wide.quantize(y))


@njit(cache=True)
def _accumulate(values, params, rounding):
    """What a minifloat accumulator kernel does: round after every add, via round_float."""
    (man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero) = params
    total = 0.0
    for v in values:
        total = round_float(total + v, man_bits, min_exp, max_exp, max_value, subnormals,
                            overflow_rule, signed_zero, rounding, 0.0)
    return total


@pytest.mark.parametrize("exp_bits,man_bits", [(5, 10), (4, 3), (8, 7)])
def test_numba_scalar_path_accumulates_like_apytypes(exp_bits: int, man_bits: int) -> None:
    """Sequential sums rounded after each add: our njit loop vs apytypes' float addition."""
    fmt = Minifloat(exp_bits, man_bits)
    rng = np.random.default_rng(exp_bits)
    values = fmt.quantize(rng.standard_normal(3000) * rng.choice([1.0, 1e-3, 30.0], 3000))
    total = apy.APyFloat.from_float(0.0, exp_bits, man_bits)
    partial = []
    for v in values:
        total = total + apy.APyFloat.from_float(float(v), exp_bits, man_bits)
        partial.append(float(total))
    params = fmt.nb_params()
    ours = [_accumulate(values[: i + 1], params, Rounding.NEAREST_EVEN.code)
            for i in range(0, values.size, 97)]
    assert ours == partial[::97]
