"""Fixed point against apytypes (an independent arbitrary-precision fixed-point library).

apytypes quirks (peer-format-libraries.md §4.3): `from_float` rounds ties away and wraps, so
inputs are built exactly representable in a wide format first and then `.cast` with explicit
quantization and overflow modes; apytypes has no unsigned type and no symmetric saturation, so
those are checked against exact Python-integer references in test_formats_exact.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from formats import FixedPoint, RsimError, parse

apy = pytest.importorskip("apytypes")

ROUNDING_TO_APY = {
    "nearest_even": "RND_CONV",
    "nearest_away": "RND_INF",
    "nearest_up": "RND",
    "floor": "TRN",
    "toward_zero": "TRN_ZERO",
}
OVERFLOW_TO_APY = {"saturate": "SAT", "wrap": "WRAP"}
EXTRA_FRACTION_BITS = 6  # inputs carry 6 bits below the target LSB: ties appear 1 in 64
VALUES_PER_CASE = 1_000_000
FORMATS_PER_CASE = 25


def _formats_for_case(seed: int) -> list[FixedPoint]:
    """Random (bits, fl) over widths 2..32 and fl -8..40, always including both extremes."""
    rng = np.random.default_rng(seed)
    pairs = {(2, -8), (32, 40), (8, 4), (16, 0)}
    while len(pairs) < FORMATS_PER_CASE:
        pairs.add((int(rng.integers(2, 33)), int(rng.integers(-8, 41))))
    return [FixedPoint(bits, fl) for bits, fl in sorted(pairs)]


def _inputs(fmt: FixedPoint, n: int, rng: np.random.Generator) -> np.ndarray:
    """Values on a grid 2^-EXTRA finer than the format's, up to 4x beyond its range, plus
    exact ties, +-0, the extremes and their neighbours."""
    fine = fmt.fl + EXTRA_FRACTION_BITS
    span = 1 << (fmt.bits + 1 + EXTRA_FRACTION_BITS)
    k = rng.integers(-span, span, n)
    ties = (rng.integers(fmt.min_code, fmt.max_code, n // 16) << EXTRA_FRACTION_BITS) + (
        1 << (EXTRA_FRACTION_BITS - 1))
    k[: ties.size] = ties
    edges = np.array([0, 1, -1, fmt.max_code, fmt.min_code, fmt.max_code + 1, fmt.min_code - 1],
                     dtype=np.int64) << EXTRA_FRACTION_BITS
    k[ties.size: ties.size + edges.size] = edges
    return np.ldexp(k.astype(np.float64), -fine)


def _apytypes_codes(x: np.ndarray, fmt: FixedPoint, rounding: str, overflow: str) -> np.ndarray:
    fine = fmt.fl + EXTRA_FRACTION_BITS
    wide = apy.APyFixedArray.from_float(x, int_bits=fmt.bits - fmt.fl + 3, frac_bits=fine)
    cast = wide.cast(int_bits=fmt.bits - fmt.fl, frac_bits=fmt.fl,
                     quantization=getattr(apy.QuantizationMode, ROUNDING_TO_APY[rounding]),
                     overflow=getattr(apy.OverflowMode, OVERFLOW_TO_APY[overflow]))
    return np.ldexp(cast.to_numpy(), fmt.fl).astype(np.int64)


@pytest.mark.parametrize("overflow", list(OVERFLOW_TO_APY))
@pytest.mark.parametrize("rounding", list(ROUNDING_TO_APY))
def test_fixed_point_codes_and_values_match_apytypes(rounding: str, overflow: str) -> None:
    seed = list(ROUNDING_TO_APY).index(rounding) * 2 + list(OVERFLOW_TO_APY).index(overflow)
    rng = np.random.default_rng(seed)
    formats = _formats_for_case(seed)
    per_format = VALUES_PER_CASE // len(formats) + 1
    checked = 0
    for fmt in formats:
        x = _inputs(fmt, per_format, rng)
        expected = _apytypes_codes(x, fmt, rounding, overflow)
        codes = fmt.encode(x, rounding, overflow)
        mismatch = np.flatnonzero(codes != expected)
        assert mismatch.size == 0, (
            f"{fmt} {rounding}/{overflow}: {mismatch.size} mismatches, e.g. x={x[mismatch[:3]]} "
            f"ours={codes[mismatch[:3]]} apytypes={expected[mismatch[:3]]}")
        values = fmt.quantize(x, rounding, overflow)
        np.testing.assert_array_equal(values, np.ldexp(expected.astype(np.float64), -fmt.fl))
        if overflow == "saturate":
            for given in (x, x.astype(np.float32)):
                codes, clipped = fmt.encode_clipped(given, rounding)
                np.testing.assert_array_equal(codes, fmt.encode(given, rounding, overflow))
                wide = given.astype(np.float64)  # float32 would round the bounds
                np.testing.assert_array_equal(clipped, (wide > fmt.max) | (wide < fmt.min))
            np.testing.assert_array_equal(fmt.encode_clipped(x, rounding)[0], expected)
        checked += x.size
    assert checked >= VALUES_PER_CASE


def test_fixed_point_bit_patterns_match_apytypes_to_bits() -> None:
    """Two's-complement patterns: our negative codes masked to W bits equal apytypes' to_bits."""
    rng = np.random.default_rng(7)
    for fmt in (FixedPoint(8, 4), FixedPoint(5, -2), FixedPoint(13, 20)):
        x = _inputs(fmt, 4000, rng)
        wide = apy.APyFixedArray.from_float(x, int_bits=fmt.bits - fmt.fl + 3,
                                            frac_bits=fmt.fl + EXTRA_FRACTION_BITS)
        cast = wide.cast(int_bits=fmt.bits - fmt.fl, frac_bits=fmt.fl,
                         quantization=apy.QuantizationMode.RND_CONV,
                         overflow=apy.OverflowMode.SAT)
        patterns = np.array(cast.to_bits(), dtype=np.int64)
        np.testing.assert_array_equal(fmt.encode(x) & ((1 << fmt.bits) - 1), patterns)


def test_decode_inverts_encode_for_every_code() -> None:
    for fmt in (parse("fixed<6,3>"), parse("ufixed<6,-2>"), parse("int4")):
        codes = np.arange(fmt.min_code, fmt.max_code + 1)
        values = fmt.decode(codes)
        np.testing.assert_array_equal(fmt.encode(values), codes)
        np.testing.assert_array_equal(fmt.quantize(values), values)


def test_integer_attributes_follow_bits_and_fl() -> None:
    fmt = parse("fixed<8,-3>")  # Ristretto's example: step 8, range [-1024, 1016]
    assert (fmt.bits, fmt.fl, fmt.signed, fmt.min_code, fmt.max_code) == (8, -3, True, -128, 127)
    assert (fmt.min, fmt.max, fmt.step) == (-1024.0, 1016.0, 8.0)
    unsigned = parse("uint8")
    assert (unsigned.min_code, unsigned.max_code) == (0, 255)
    assert (unsigned.min, unsigned.max) == (0.0, 255.0)
    assert parse("int32").max_code == 2**31 - 1


def test_sixty_four_bit_codes_saturate_and_wrap_exactly() -> None:
    fmt = parse("fixed<64,0>")
    assert fmt.encode([1e30, -1e30], overflow="saturate").tolist() == [2**63 - 1, -(2**63)]
    wrapped = fmt.encode([2.0**64 + 2.0**40 * 3], overflow="wrap")
    assert wrapped.tolist() == [2**40 * 3]


def test_infinities_saturate_and_cannot_wrap() -> None:
    fmt = parse("fixed<8,4>")
    assert fmt.quantize([np.inf, -np.inf]).tolist() == [fmt.max, fmt.min]
    with pytest.raises(RsimError, match="wrap"):
        fmt.quantize([np.inf], overflow="wrap")


def test_float32_input_gives_float32_output_unless_asked() -> None:
    fmt = parse("fixed<8,4>")
    x32 = np.array([1.03125, -3.3], dtype=np.float32)
    assert fmt.quantize(x32).dtype == np.float32
    assert fmt.quantize(x32, dtype=np.float64).dtype == np.float64
    assert fmt.quantize([1.0, 2.0]).dtype == np.float64
    assert fmt.quantize(np.float64(1.0), dtype=np.float32).shape == ()
