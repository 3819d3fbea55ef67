"""MX block formats, integer affine, power of two and the DFP fl chooser against independent
vectorised references (ml_dtypes element casts, float64 quotients of float32 data, exact
integer arithmetic) on 1e6 values per case."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from formats import Affine, MXCodes, RsimError, choose_fl, dfp_format, integer_length, parse

VALUES_PER_CASE = 1_000_000
BLOCK = 32

MX_ELEMENTS = {
    "mxfp8_e4m3": (ml_dtypes.float8_e4m3fn, 448.0, 8),
    "mxfp8_e5m2": (ml_dtypes.float8_e5m2, 57344.0, 15),
    "mxfp6_e3m2": (ml_dtypes.float6_e3m2fn, 28.0, 4),
    "mxfp6_e2m3": (ml_dtypes.float6_e2m3fn, 7.5, 2),
    "mxfp4": (ml_dtypes.float4_e2m1fn, 6.0, 2),
}


def _mx_blocks(rng: np.random.Generator, emax: int, grid_midpoints: np.ndarray) -> np.ndarray:
    """float32 blocks: normal data at per-block scales over float32's range, all-zero blocks,
    and blocks of element-grid midpoints (ties) whose first element fixes the scale."""
    n_blocks = VALUES_PER_CASE // BLOCK
    scales = np.exp2(rng.uniform(-125, 100, n_blocks))[:, None]
    blocks = rng.standard_normal((n_blocks, BLOCK)) * scales
    blocks[: n_blocks // 50] = 0.0
    tie_rows = slice(n_blocks // 50, n_blocks // 5)
    count = tie_rows.stop - tie_rows.start
    shift = np.exp2(rng.integers(-100, 100, count))[:, None]
    ties = rng.choice(grid_midpoints, (count, BLOCK)) * rng.choice([-1.0, 1.0], (count, BLOCK))
    ties[:, 0] = 2.0**emax
    blocks[tie_rows] = ties * shift
    return blocks.astype(np.float32)


def _mx_reference(blocks: np.ndarray, dtype, element_max: float, emax: int) -> np.ndarray:
    """OCP MX v1.0 §6.3 with ml_dtypes doing the element rounding (float32 in, no double
    rounding): X = 2^(floor(log2 amax) - emax), clamped at 2^-127; elements saturate."""
    amax = np.max(np.abs(blocks.astype(np.float64)), axis=1)
    exponent = np.frexp(amax)[1] - 1 - emax
    exponent = np.where(amax == 0, -127, np.maximum(exponent, -127))
    scale = np.exp2(exponent.astype(np.float64))[:, None]
    ratio = np.clip(blocks / scale, -element_max, element_max).astype(np.float32)
    return ratio.astype(dtype).astype(np.float64) * scale


@pytest.mark.parametrize("name", list(MX_ELEMENTS))
def test_mx_float_formats_match_ocp_rule_with_ml_dtypes_elements(name: str) -> None:
    fmt = parse(name)
    dtype, element_max, emax = MX_ELEMENTS[name]
    assert fmt.emax_elem == emax and fmt.element.max == element_max
    grid = np.unique(fmt.element.decode(np.arange(1 << fmt.element.bits)))
    grid = grid[np.isfinite(grid) & (grid >= 0)]
    blocks = _mx_blocks(np.random.default_rng(len(name)), emax, (grid[:-1] + grid[1:]) / 2)
    expected = _mx_reference(blocks, dtype, element_max, emax)
    np.testing.assert_array_equal(fmt.quantize(blocks.astype(np.float64)), expected)
    codes = fmt.encode(blocks)
    np.testing.assert_array_equal(fmt.decode(codes), expected)


def test_mxint8_elements_are_int8_with_six_fraction_bits() -> None:
    fmt = parse("mxint8")
    rng = np.random.default_rng(8)
    blocks = (rng.standard_normal((VALUES_PER_CASE // BLOCK, BLOCK)) *
              np.exp2(rng.uniform(-60, 60, VALUES_PER_CASE // BLOCK))[:, None])
    amax = np.max(np.abs(blocks), axis=1)
    scale = np.exp2(np.frexp(amax)[1] - 1.0)[:, None]  # emax of 1.6 fixed point is 0
    expected = np.clip(np.rint(blocks / scale * 64), -128, 127) / 64 * scale
    np.testing.assert_array_equal(fmt.quantize(blocks), expected)


def test_mx_blocks_with_inf_or_nan_get_the_nan_scale() -> None:
    fmt = parse("mxfp8_e4m3")
    x = np.ones((3, BLOCK))
    x[1, 5], x[2, 0] = np.nan, -np.inf
    q = fmt.quantize(x)
    assert np.isfinite(q[0]).all() and np.isnan(q[1:]).all()
    codes = fmt.encode(x)
    assert codes.scales[:, 0].tolist() == [127 - 8, 255, 255]  # 2^(0 - emax) for the ones
    assert np.isnan(fmt.decode(codes)[1:]).all()


def test_mx_scale_is_clamped_and_zero_blocks_get_the_smallest_scale() -> None:
    fmt = parse("mxfp4")
    x = np.zeros((2, BLOCK))
    x[1, 0] = 2.0**-140  # floor(log2) - emax = -142 -> clamped to -127 -> element 0
    codes = fmt.encode(x)
    assert codes.scales[:, 0].tolist() == [0, 0]
    assert not fmt.quantize(x).any()


def test_mx_blocks_run_along_the_chosen_axis_and_a_short_tail_block() -> None:
    fmt = parse("mx<fp8_e4m3fn,block=4,axis=0>")
    x = np.random.default_rng(1).standard_normal((10, 3))
    along_last = parse("mx<fp8_e4m3fn,block=4>").quantize(x.T).T
    np.testing.assert_array_equal(fmt.quantize(x), along_last)
    codes = fmt.encode(x)
    assert codes.scales.shape == (3, 3) and codes.elements.shape == (10, 3)
    np.testing.assert_array_equal(fmt.decode(codes), fmt.quantize(x))


def test_mx_decode_rejects_codes_that_are_not_an_encoded_pair() -> None:
    with pytest.raises(RsimError, match="MXCodes"):
        parse("mxfp4").decode(np.zeros(32, dtype=np.int64))
    with pytest.raises(RsimError, match="scales"):
        parse("mxfp4").decode(MXCodes(np.zeros(64, dtype=np.int64), np.zeros(1, np.int64)))


# -- integer affine -----------------------------------------------------------------------------

def test_affine_per_tensor_matches_rounded_float_quotient() -> None:
    """For float32 data and scales the float64 quotient never flips a rounding decision."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(VALUES_PER_CASE) * 30).astype(np.float32)
    scale = np.float32(0.173)
    x[: VALUES_PER_CASE // 10] = (rng.integers(-200, 200, VALUES_PER_CASE // 10) + 0.5) * scale
    fmt = parse(f"affine<int8,scale={float(scale)!r},zp=-7>")
    expected = np.clip(np.rint(x.astype(np.float64) / float(scale)) - 7, -128, 127)
    np.testing.assert_array_equal(fmt.encode(x), expected)
    np.testing.assert_array_equal(fmt.quantize(x, dtype=np.float64), (expected + 7) * float(scale))


def test_affine_per_channel_uses_the_scale_of_each_index_along_axis() -> None:
    rng = np.random.default_rng(12)
    scales = rng.uniform(0.01, 1, 16).astype(np.float32).astype(np.float64)
    zps = rng.integers(0, 256, 16)
    fmt = Affine(parse("uint8"), scales, zps, axis=1)  # per-channel scales through the API
    assert parse(str(fmt)) == fmt
    x = (rng.standard_normal((VALUES_PER_CASE // 64, 16, 4)) * 40).astype(np.float32)
    expected = np.clip(np.rint(x / scales[None, :, None]) + zps[None, :, None], 0, 255)
    np.testing.assert_array_equal(fmt.encode(x), expected)
    decoded = fmt.decode(expected.astype(np.int64))
    np.testing.assert_array_equal(decoded, (expected - zps[None, :, None]) * scales[None, :, None])
    with pytest.raises(RsimError, match="axis 1 with 16 channels"):
        fmt.quantize(np.zeros((4, 8)))


def test_affine_single_scale_with_axis_broadcasts() -> None:
    fmt = parse("affine<int8,scale=0.5,axis=0>")
    np.testing.assert_array_equal(fmt.quantize(np.array([[1.3], [-2.2]])), [[1.5], [-2.0]])


# -- power of two -------------------------------------------------------------------------------

def test_power_of_two_matches_a_significand_squared_reference() -> None:
    """For float32 x = f * 2^k (f in [1, 2)): round up iff f*f > 2, exact in float64."""
    rng = np.random.default_rng(13)
    x = (np.exp2(rng.uniform(-14, 6, VALUES_PER_CASE)) *
         rng.choice([-1.0, 1.0], VALUES_PER_CASE)).astype(np.float32)
    mantissa, exponent = np.frexp(np.abs(x).astype(np.float64))
    f, k = mantissa * 2, exponent - 1
    k = np.where(f * f > 2, k + 1, k)
    for fmt in (parse("pow2<-8,-1,zero=false>"), parse("pow2<-10,3>")):
        if fmt.zero:
            magnitude = np.where(k < fmt.exp_min, 0.0, np.exp2(np.minimum(k, fmt.exp_max)))
        else:
            magnitude = np.exp2(np.clip(k, fmt.exp_min, fmt.exp_max))
        expected = np.where(x < 0, -magnitude, magnitude) + 0.0
        np.testing.assert_array_equal(fmt.quantize(x.astype(np.float64)), expected)


def test_power_of_two_ristretto_examples() -> None:
    """ristretto-facts.md §2b: 0.35 -> 0.25, 0.36 -> 0.5, 0.9 -> 0.5 (clamped), 0 -> +2^-8."""
    fmt = parse("pow2<-8,-1,zero=false>")
    assert fmt.quantize([0.35, 0.36, 0.9, 0.0, -0.0, 1e-9, -0.7]).tolist() == [
        0.25, 0.5, 0.5, 2.0**-8, 2.0**-8, 2.0**-8, -0.5]
    assert fmt.bits == 4  # sign + 8 exponents


def test_power_of_two_codes_are_sign_and_exponent_index() -> None:
    fmt = parse("pow2<-3,3>")
    codes = fmt.encode([0.0, 0.125, 8.0, -1.0])
    assert codes.tolist() == [0, 1, 7, 8 | 4]
    np.testing.assert_array_equal(fmt.decode(codes), [0.0, 0.125, 8.0, -1.0])


# -- dynamic fixed point ------------------------------------------------------------------------

def test_integer_length_rules_match_powers_of_two_counting() -> None:
    rng = np.random.default_rng(14)
    maxima = np.concatenate([np.exp2(rng.uniform(-20, 20, 2000)), np.exp2(np.arange(-20, 21.0))])
    for m in maxima:
        smallest = next(i for i in range(-30, 30) if 2.0**i >= m)  # ceil(log2 m), exactly
        assert integer_length(m, "activations") == smallest
        assert integer_length(m, "weights") == smallest + 1


def test_ristretto_dfp_examples() -> None:
    """SqueezeNet stats (ristretto-facts.md §2d): max_in 151 -> il 8 -> fl 0 (151 saturates to
    127); max_params 0.816 -> il 1 -> fl 7; max_out 1223 -> il 11 -> fl -3 (step 8, max 1016)."""
    assert choose_fl(151, 8, "activations") == 0
    assert parse("fixed<8,0>").quantize([151])[0] == 127
    assert choose_fl(0.816, 8, "weights") == 7
    assert choose_fl(1223, 8, "activations") == -3
    assert parse("fixed<8,-3>").max == 1016
    assert dfp_format(np.array([0.3, -0.816]), 8) == parse("fixed<8,7>")


def test_dfp_rejects_bad_maxima_and_rules() -> None:
    with pytest.raises(RsimError, match="weights, activations"):
        choose_fl(1.0, 8, "bias")
    with pytest.raises(RsimError, match="finite"):
        choose_fl(float("inf"), 8)
    assert choose_fl(0.0, 8) == 7  # all-zero tensor: il = 1


def test_ristretto_dfp_tie_rules_cpu_and_gpu() -> None:
    """ristretto-facts.md §2b: bw=8, fl=4, x=+-1.03125: CPU round() +-1.0625, GPU rint() +-1.0;
    and bw=8, fl=-3 has step 8 and range [-1024, 1016]."""
    fmt = parse("fixed<8,4>")
    assert fmt.quantize([1.03125, -1.03125], "nearest_away").tolist() == [1.0625, -1.0625]
    assert fmt.quantize([1.03125, -1.03125], "nearest_even").tolist() == [1.0, -1.0]
    coarse = parse("fixed<8,-3>")
    assert coarse.quantize([-5000.0, 13.0, 5000.0]).tolist() == [-1024.0, 16.0, 1016.0]
