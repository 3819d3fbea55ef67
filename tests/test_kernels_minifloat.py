"""Minifloat MAC datapaths against apytypes' floating-point matmul (rounds every product and
every addition, sequentially in k), numpy float16/float32 sequential loops, and an exact
Fraction reference where float64 sums are inexact."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import kernels
import kernels.minifloat
from formats import Minifloat, Register, Rounding, parse
from formats.errors import RsimError
from formats.float_nb import round_float
from plans import float_plan_of, plan_of

FP16, FP32, BF16, E4M3 = parse("fp16"), parse("fp32"), parse("bf16"), Minifloat(4, 3)


def _round_rne(q: Fraction, man_bits: int, min_exp: int) -> Fraction:
    """Exact rational q rounded to nearest-even on a float grid with man_bits and subnormals below
    2^min_exp (no overflow handling: the tests stay in range)."""
    if q == 0:
        return Fraction(0)
    e = max(math.floor(math.log2(abs(q))), min_exp)
    while Fraction(2) ** e > abs(q) and e > min_exp:  # guard log2 rounding
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(q):
        e += 1
    quantum = Fraction(2) ** (max(e, min_exp) - man_bits)
    scaled = q / quantum
    n = math.floor(scaled)
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2):
        n += 1
    return n * quantum


def _sequential(a, b, cast, k_chunk=None, partial_sum_cast=None, bias=None, bias_mode="post", product_cast=None):
    """Sequential float reference; `cast` rounds a float64 to the accumulator format."""
    m_dim, k_dim = a.shape
    out = np.zeros((m_dim, b.shape[1]))
    chunk = k_dim if k_chunk is None else k_chunk
    for m in range(m_dim):
        for n in range(b.shape[1]):
            partial_sum = 0.0
            for c, k0 in enumerate(range(0, k_dim, chunk)):
                acc = float(bias[n]) if (bias is not None and bias_mode == "preload" and c == 0) else 0.0
                for k in range(k0, min(k0 + chunk, k_dim)):
                    p = float(a[m, k]) * float(b[k, n])
                    acc = cast(acc + (product_cast(p) if product_cast else p))
                if k_chunk is not None:
                    partial_sum = partial_sum_cast(partial_sum + acc)
            value = partial_sum if k_chunk is not None else acc
            if bias is not None and bias_mode == "post":
                value = (partial_sum_cast if k_chunk is not None else cast)(value + float(bias[n]))
            out[m, n] = value
    return out


def _f16(x: float) -> float:
    return float(np.float16(x))  # numpy rounds float64 -> float16 correctly (no double rounding)


@pytest.mark.parametrize("fmt, exp_bits, man_bits, scale", [(FP16, 5, 10, 1.0), (BF16, 8, 7, 1.0),
                                                            (E4M3, 4, 3, 0.5)])  # fmt: skip
def test_matmul_with_products_rounded_to_the_operand_format_equals_apytypes(fmt, exp_bits, man_bits, scale):
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(exp_bits)
    a = fmt.quantize(rng.normal(size=(12, 70)) * scale)
    b = fmt.quantize(rng.normal(size=(70, 9)) * scale)
    ours = kernels.minifloat_gemm(a, b, float_plan_of(acc_format=fmt, product_format=fmt), a_format=fmt, b_format=fmt)
    ref = (apy.APyFloatArray.from_float(a, exp_bits, man_bits) @ apy.APyFloatArray.from_float(b, exp_bits, man_bits))
    assert np.array_equal(ours, ref.to_numpy())


def test_fp8_e4m3_products_accumulated_in_fp16_round_after_every_addition():
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(1)
    a = E4M3.quantize(rng.normal(size=(10, 300)) * 8)
    b = E4M3.quantize(rng.normal(size=(300, 7)) * 8)
    ours = kernels.minifloat_gemm(a, b, float_plan_of(acc_format=FP16), a_format=E4M3, b_format=E4M3)
    assert np.array_equal(ours, _sequential(a, b, _f16))
    # apytypes: e4m3 products are exact in fp16, and its accumulator context rounds every add
    with apy.APyFloatAccumulatorContext(exp_bits=5, man_bits=10):
        ref = apy.APyFloatArray.from_float(a, 4, 3) @ apy.APyFloatArray.from_float(b, 4, 3)
    assert np.array_equal(ours, ref.to_numpy())
    exact = a @ b
    assert not np.array_equal(ours, FP16.quantize(exact))  # rounding every add is visible


@pytest.mark.parametrize("bias_mode", ["preload", "post"])
def test_chunks_partial_sums_and_bias_follow_the_plan_order(bias_mode):
    rng = np.random.default_rng(2)
    a = E4M3.quantize(rng.normal(size=(6, 100)) * 4)
    b = E4M3.quantize(rng.normal(size=(100, 5)) * 4)
    bias = FP32.quantize(rng.normal(size=5) * 100) if bias_mode == "post" else FP16.quantize(rng.normal(size=5) * 100)
    ours = kernels.minifloat_gemm(a, b, float_plan_of(acc_format=FP16, k_chunk=16, partial_sum_format=FP32, bias_mode=bias_mode, product_format=E4M3), a_format=E4M3, b_format=E4M3, bias=bias)  # fmt: skip
    ref = _sequential(a, b, _f16, k_chunk=16, partial_sum_cast=lambda x: float(np.float32(x)), bias=bias,
                      bias_mode=bias_mode, product_cast=lambda p: float(E4M3.quantize(np.array([p]))[0]))  # fmt: skip
    assert np.array_equal(ours, ref)


def test_sums_inexact_in_float64_are_still_correctly_rounded():
    # bf16 operands spanning 2^-120..2^120 make fp32 sums that float64 cannot hold exactly
    rng = np.random.default_rng(3)
    a = BF16.quantize(np.ldexp(rng.uniform(1, 2, (4, 60)) * rng.choice([-1, 1], (4, 60)),
                               rng.integers(-60, 60, (4, 60))))  # fmt: skip
    b = BF16.quantize(np.ldexp(rng.uniform(1, 2, (60, 3)), rng.integers(-60, 60, (60, 3))))
    ours = kernels.minifloat_gemm(a, b, float_plan_of(acc_format=FP32), a_format=BF16, b_format=BF16)
    for m in range(4):
        for n in range(3):
            acc = Fraction(0)
            for k in range(60):
                acc = _round_rne(acc + Fraction(float(a[m, k])) * Fraction(float(b[k, n])), 23, -126)
            assert Fraction(float(ours[m, n])) == acc


def test_minifloat_conv2d_reduces_each_output_in_the_documented_k_order():
    rng = np.random.default_rng(4)
    x = E4M3.quantize(rng.normal(size=(1, 4, 5, 5)) * 6)
    w = E4M3.quantize(rng.normal(size=(6, 2, 3, 3)) * 6)
    out = kernels.minifloat_conv2d(x, w, float_plan_of(acc_format=FP16), x_format=E4M3, w_format=E4M3, padding=1, groups=2, k_order="hwc")  # fmt: skip
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for o in range(6):
        g = o // 3
        for y in range(5):
            for xo in range(5):
                acc = 0.0
                for i in range(3):
                    for j in range(3):
                        for c in range(2):
                            acc = _f16(acc + padded[0, 2 * g + c, y + i, xo + j] * w[o, c, i, j])
                assert out[0, o, y, xo] == acc


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"a": np.array([[0.3]])}, "a"),
        ({"plan": float_plan_of(FP16, rounding="stochastic")}, "minifloat_gemm: stochastic"),
        ({"plan": plan_of(acc_bits=16)}, "minifloat_gemm: the plan's registers are integer"),
        ({"a_format": "fp16"}, "a_format"),
        ({"bias": np.array([1e9])}, "bias"),
    ],
)
def test_bad_minifloat_arguments_name_the_argument(kwargs, name):
    args = {"a": np.array([[0.5]]), "b": np.array([[2.0]]), "plan": float_plan_of(FP16),
            "a_format": E4M3, "b_format": E4M3}
    args.update(kwargs)
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        kernels.minifloat_gemm(args.pop("a"), args.pop("b"), args.pop("plan"), **args)


def test_minifloat_conv_transpose2d_rounds_in_the_documented_tap_order():
    # each output adds its taps by input channel ascending, kernel row and column descending
    rng = np.random.default_rng(5)
    x = E4M3.quantize(rng.normal(size=(1, 4, 3, 4)) * 8)
    w = E4M3.quantize(rng.normal(size=(4, 2, 3, 2)) * 8)
    stride, top, left = (2, 1), 1, 0
    out = kernels.minifloat_conv_transpose2d(x, w, float_plan_of(acc_format=FP16), x_format=E4M3, w_format=E4M3, stride=stride, padding=(top, left, 0, 0), groups=2)  # fmt: skip
    assert out.shape == (1, 4, 2 * 2 + 3 - 1, 3 + 2)
    for o in range(4):
        g, o_in = divmod(o, 2)
        for y in range(out.shape[2]):
            for xo in range(out.shape[3]):
                acc = 0.0
                for c in range(2):
                    for i in reversed(range(3)):
                        for j in reversed(range(2)):
                            ny, nx = y + top - i, xo + left - j
                            if ny % stride[0] or nx % stride[1]:
                                continue
                            iy, ix = ny // stride[0], nx // stride[1]
                            if 0 <= iy < 3 and 0 <= ix < 4:
                                acc = _f16(acc + x[0, 2 * g + c, iy, ix] * w[2 * g + c, o_in, i, j])
                assert out[0, o, y, xo] == acc


# -- the nearest-even shortcut (formats.float_nb.round_nearest_even_in_range) -------------------

SHORTCUT_FORMATS = ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2fnuz", "fp8_e5m2", "float<3,1>",
                    "float<5,4,bias=3>", "float<4,3,subnormals=false>", "float<4,3,special=none>", "float<4,0,special=none>"]


def _nearest_grid_value(fmt: Minifloat, x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties to the even significand, by search in the format's value set
    (decoded from every code, so it shares nothing with round_float). Beyond max the next
    candidate is max plus one step; landing there (or beyond) is overflow: inf for IEEE, NaN for
    fn/fnuz, max for formats without specials."""
    codes = np.arange(1 << (fmt.exp_bits + fmt.man_bits))
    grid = np.unique(fmt.decode(codes))
    grid = grid[np.isfinite(grid)]
    top = grid[-1]
    step_at_top = math.ldexp(1.0, math.frexp(top)[1] - 1 - fmt.man_bits)
    candidates = np.append(grid, top + step_at_top)
    a = np.abs(x)
    i = np.clip(np.searchsorted(candidates, a, side="right") - 1, 0, len(candidates) - 2)
    lo, hi = candidates[i], candidates[i + 1]
    binade = np.maximum(np.frexp(lo)[1] - 1, fmt.min_exp)
    odd = (lo > 0) & (np.ldexp(lo, fmt.man_bits - binade).astype(np.int64) % 2 == 1)
    d_lo, d_hi = a - lo, hi - a  # exact: lo >= hi / 2 except lo = 0, where only the order matters
    rounded = np.where((d_hi < d_lo) | ((d_hi == d_lo) & odd), hi, lo)
    overflow = (rounded > top) | (a > candidates[-1])
    over_value = {"ieee": np.inf, "none": top}.get(fmt.special, np.nan)
    magnitude = np.where(overflow, over_value, rounded)
    value = np.copysign(magnitude, x)
    value = np.where(np.isnan(x), np.nan, value)
    return value + 0.0 if fmt.special == "fnuz" else value


def _rounding_corners(fmt: Minifloat) -> np.ndarray:
    """Every positive value of the format, the midpoints between neighbours (ties), one float64
    step either side of both, the same past max (up to beyond the overflow threshold) and in the
    subnormal range, zeros, infinities, NaN (if the format has one); with both signs."""
    codes = np.arange(1 << (fmt.exp_bits + fmt.man_bits))
    grid = np.unique(fmt.decode(codes))
    grid = grid[np.isfinite(grid)]
    top = grid[-1]
    step_at_top = math.ldexp(1.0, math.frexp(top)[1] - 1 - fmt.man_bits)
    points = np.concatenate([grid, [top + step_at_top, top + 2 * step_at_top, 4 * top]])
    mids = (points[:-1] + points[1:]) / 2
    base = np.concatenate([points, mids, [fmt.smallest_positive / 4, 5e-324, 1e-300]])
    near = np.concatenate([base, np.nextafter(base, np.inf), np.nextafter(base, -np.inf)])
    x = np.concatenate([near, [0.0, np.inf] + ([np.nan] if fmt.has_nan else [])])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", SHORTCUT_FORMATS)
def test_nearest_even_rounds_ties_subnormals_and_overflow_like_the_nearest_grid_value(name):
    fmt = parse(name)
    x = _rounding_corners(fmt)
    expected = _nearest_grid_value(fmt, x)
    signed = ~np.isnan(expected)  # zeros and infinities carry a sign; NaN's sign is not specified
    quantized = fmt.quantize(x)  # the vectorised shortcut in blocks, falling back to round_float
    assert np.array_equal(quantized, expected, equal_nan=True)
    assert np.array_equal(np.signbit(quantized[signed]), np.signbit(expected[signed]))
    ordered = np.random.default_rng(7).permutation(x)  # the fallback meets other neighbours
    assert np.array_equal(fmt.quantize(ordered), _nearest_grid_value(fmt, ordered), equal_nan=True)
    scalar = np.array([round_float(v, *fmt.nb_params(), Rounding.NEAREST_EVEN.code, 0.0) for v in x])
    assert np.array_equal(scalar, expected, equal_nan=True)
    assert np.array_equal(np.signbit(scalar[signed]), np.signbit(expected[signed]))


@pytest.mark.parametrize("product_format, scale", [(None, 60), (E4M3, 8)])
def test_vectorised_accumulator_rows_overflow_to_inf_and_stay_there_like_float16(product_format, scale):
    # e4m3 products reach 240^2 = 57600 (fp16 max 65504): sums overflow to +-inf and a later
    # negative product cannot bring them back; rounded to e4m3 (max 240) such a product is
    # already +-inf, and inf - inf is NaN
    rng = np.random.default_rng(8)
    a = E4M3.quantize(rng.normal(size=(6, 40)) * scale)
    b = E4M3.quantize(rng.normal(size=(40, 9)) * scale)
    a[0, :3], b[:3, 0] = [240.0, 240.0, -240.0], [240.0, 240.0, 240.0]
    plan = float_plan_of(acc_format=FP16, product_format=product_format)
    assert kernels.minifloat._FloatReduction(plan, E4M3, E4M3, "test").row_shortcut  # vectorised
    ours = kernels.minifloat_gemm(a, b, plan, a_format=E4M3, b_format=E4M3)
    product_cast = None if product_format is None else (lambda p: float(E4M3.quantize(np.array([p]))[0]))
    with np.errstate(over="ignore", invalid="ignore"):
        ref = _sequential(a, b, _f16, product_cast=product_cast)
    assert not np.isfinite(ours[0, 0]) and np.isinf(ours).sum() > 1
    assert np.array_equal(ours, ref, equal_nan=True)


def test_vectorised_accumulator_rows_round_subnormal_sums_to_nearest_even():
    # float<3,2> has steps of 1/16 below 1/4: small e4m3 products make sums that round there
    acc = parse("float<3,2>")
    rng = np.random.default_rng(9)
    a = E4M3.quantize(rng.normal(size=(5, 30)) * 0.3)
    b = E4M3.quantize(rng.normal(size=(30, 4)) * 0.3)
    ours = kernels.minifloat_gemm(a, b, float_plan_of(acc_format=acc), a_format=E4M3, b_format=E4M3)
    subnormal_steps = 0
    for m in range(5):
        for n in range(4):
            total = Fraction(0)
            for k in range(30):
                exact = total + Fraction(float(a[m, k])) * Fraction(float(b[k, n]))
                total = _round_rne(exact, acc.man_bits, acc.min_exp)
                subnormal_steps += abs(exact) < Fraction(1, 4) and total != exact
            assert Fraction(float(ours[m, n])) == total
    assert subnormal_steps > 20  # the subnormal range really rounded


@pytest.mark.parametrize("a_spec, b_spec, k_chunk", [
    ("fixed<16,12>", "fixed<8,7>", None),
    ("fixed<24,10>", "fixed<24,20>", 7),
    ("fixed<8,4>", "pow2<-8,-1,zero=false>", None),
])
def test_fixed_point_and_pow2_operands_accumulate_in_float32_one_addition_at_a_time(
        a_spec, b_spec, k_chunk):
    """Ristretto's float GEMM: operands on fixed-point (or power-of-two) grids, each exact
    product added to a float32 register rounded to nearest even, in ascending k (chunks, then
    a float32 partial sum)."""
    a_fmt, b_fmt = parse(a_spec), parse(b_spec)
    rng = np.random.default_rng(7)
    a = a_fmt.quantize(rng.normal(0, 4, (3, 40)))
    b = b_fmt.quantize(rng.normal(0, 0.5, (40, 4)))
    ours = kernels.minifloat_gemm(a, b, float_plan_of(FP32, k_chunk=k_chunk), a_format=a_fmt,
                                  b_format=b_fmt)
    chunk = k_chunk or 40
    for m, n in np.ndindex(3, 4):
        total = Fraction(0)
        for start in range(0, 40, chunk):
            acc = Fraction(0)
            for k in range(start, min(start + chunk, 40)):
                acc = _round_rne(acc + Fraction(float(a[m, k])) * Fraction(float(b[k, n])), 23,
                                 -126)
            total = acc if k_chunk is None else _round_rne(total + acc, 23, -126)
        assert Fraction(float(ours[m, n])) == total, (m, n)


def test_a_reduction_that_can_never_round_takes_blas_and_equals_the_sequential_rounding(
        monkeypatch):
    """fixed<8,4> x fixed<8,6> products are multiples of 2^-10 and 40 of them stay below 2^10,
    so every float32 partial sum is exact in any order: the kernel skips the per-addition loop
    (checked by disabling it) and still equals the one-addition-at-a-time reference."""
    a_fmt, b_fmt = parse("fixed<8,4>"), parse("fixed<8,6>")
    rng = np.random.default_rng(8)
    a = a_fmt.quantize(rng.normal(0, 3, (5, 40)))
    b = b_fmt.quantize(rng.normal(0, 1, (40, 6)))
    bias = parse("fixed<8,3>").quantize(rng.normal(0, 4, 6))

    def refuse(*args):
        raise AssertionError("the sequential row loop ran")

    monkeypatch.setattr(kernels.minifloat, "_minifloat_rows", refuse)
    ours = kernels.minifloat_gemm(a, b, float_plan_of(FP32, k_chunk=16), a_format=a_fmt,
                                  b_format=b_fmt, bias=bias)
    for m, n in np.ndindex(5, 6):
        total = Fraction(0)
        for start in range(0, 40, 16):
            acc = Fraction(0)
            for k in range(start, min(start + 16, 40)):
                acc = _round_rne(acc + Fraction(float(a[m, k])) * Fraction(float(b[k, n])), 23,
                                 -126)
            total = _round_rne(total + acc, 23, -126)
        assert Fraction(float(ours[m, n])) == _round_rne(total + Fraction(float(bias[n])), 23,
                                                         -126)
    wide = a_fmt.quantize(np.full((1, 40), 7.9375))  # 40 x 7.9375 x 2: no longer provably exact
    with pytest.raises(AssertionError, match="sequential row loop ran"):
        kernels.minifloat_gemm(wide, np.full((40, 1), 1.984375), float_plan_of(FP16),
                               a_format=a_fmt, b_format=b_fmt)


def test_an_fp32_register_in_blas_order_is_caffes_float_gemm():
    """order: blas is what Caffe computes for Ristretto: float32 operands into sgemm, then the
    float32 bias; a partial-sum step has no place in it."""
    a_fmt, b_fmt = parse("fixed<32,16>"), parse("fixed<16,15>")
    rng = np.random.default_rng(9)
    a = a_fmt.quantize(rng.normal(0, 30, (7, 300)))
    b = b_fmt.quantize(rng.normal(0, 0.2, (300, 5)))
    bias = FP32.quantize(rng.normal(0, 1, 5))
    plan = kernels.ReductionPlan(Register(format=FP32, order="blas"))
    ours = kernels.minifloat_gemm(a, b, plan, a_format=a_fmt, b_format=b_fmt, bias=bias)
    expected = (a.astype(np.float32) @ b.astype(np.float32)) + bias.astype(np.float32)
    np.testing.assert_array_equal(ours, expected.astype(np.float64))
    with pytest.raises(RsimError, match="no partial-sum step"):
        kernels.minifloat_gemm(a, b, kernels.ReductionPlan(Register(format=FP32, order="blas"), 16),
                               a_format=a_fmt, b_format=b_fmt)
