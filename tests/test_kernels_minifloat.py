"""Minifloat MAC datapaths against apytypes' floating-point matmul (rounds every product and
every addition, sequentially in k), numpy float16/float32 sequential loops, and an exact
Fraction reference where float64 sums are inexact."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import kernels
from formats import Minifloat, parse
from formats.errors import RsimError

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


def _sequential(a, b, cast, k_chunk=None, psum_cast=None, bias=None, bias_mode="post", product_cast=None):
    """Sequential float reference; `cast` rounds a float64 to the accumulator format."""
    m_dim, k_dim = a.shape
    out = np.zeros((m_dim, b.shape[1]))
    chunk = k_dim if k_chunk is None else k_chunk
    for m in range(m_dim):
        for n in range(b.shape[1]):
            psum = 0.0
            for c, k0 in enumerate(range(0, k_dim, chunk)):
                acc = float(bias[n]) if (bias is not None and bias_mode == "preload" and c == 0) else 0.0
                for k in range(k0, min(k0 + chunk, k_dim)):
                    p = float(a[m, k]) * float(b[k, n])
                    acc = cast(acc + (product_cast(p) if product_cast else p))
                if k_chunk is not None:
                    psum = psum_cast(psum + acc)
            value = psum if k_chunk is not None else acc
            if bias is not None and bias_mode == "post":
                value = (psum_cast if k_chunk is not None else cast)(value + float(bias[n]))
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
    ours = kernels.minifloat_gemm(a, b, a_format=fmt, b_format=fmt, acc_format=fmt, product_format=fmt)
    ref = (apy.APyFloatArray.from_float(a, exp_bits, man_bits) @ apy.APyFloatArray.from_float(b, exp_bits, man_bits))
    assert np.array_equal(ours, ref.to_numpy())


def test_fp8_e4m3_products_accumulated_in_fp16_round_after_every_addition():
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(1)
    a = E4M3.quantize(rng.normal(size=(10, 300)) * 8)
    b = E4M3.quantize(rng.normal(size=(300, 7)) * 8)
    ours = kernels.minifloat_gemm(a, b, a_format=E4M3, b_format=E4M3, acc_format=FP16)
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
    ours = kernels.minifloat_gemm(a, b, a_format=E4M3, b_format=E4M3, acc_format=FP16, k_chunk=16,
                                  psum_format=FP32, bias=bias, bias_mode=bias_mode,
                                  product_format=E4M3)  # fmt: skip
    ref = _sequential(a, b, _f16, k_chunk=16, psum_cast=lambda x: float(np.float32(x)), bias=bias,
                      bias_mode=bias_mode, product_cast=lambda p: float(E4M3.quantize(np.array([p]))[0]))  # fmt: skip
    assert np.array_equal(ours, ref)


def test_sums_inexact_in_float64_are_still_correctly_rounded():
    # bf16 operands spanning 2^-120..2^120 make fp32 sums that float64 cannot hold exactly
    rng = np.random.default_rng(3)
    a = BF16.quantize(np.ldexp(rng.uniform(1, 2, (4, 60)) * rng.choice([-1, 1], (4, 60)),
                               rng.integers(-60, 60, (4, 60))))  # fmt: skip
    b = BF16.quantize(np.ldexp(rng.uniform(1, 2, (60, 3)), rng.integers(-60, 60, (60, 3))))
    ours = kernels.minifloat_gemm(a, b, a_format=BF16, b_format=BF16, acc_format=FP32)
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
    out = kernels.minifloat_conv2d(x, w, x_format=E4M3, w_format=E4M3, acc_format=FP16, padding=1,
                                   groups=2, k_order="hwc")  # fmt: skip
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
        ({"rounding": "stochastic"}, "rounding"),
        ({"k_chunk": 0}, "k_chunk"),
        ({"acc_format": "fp16"}, "acc_format"),
        ({"bias": np.array([1e9])}, "bias"),
    ],
)
def test_bad_minifloat_arguments_name_the_argument(kwargs, name):
    args = {"a": np.array([[0.5]]), "b": np.array([[2.0]]), "a_format": E4M3, "b_format": E4M3, "acc_format": FP16}
    args.update(kwargs)
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        kernels.minifloat_gemm(args.pop("a"), args.pop("b"), **args)


def test_minifloat_conv_transpose2d_rounds_in_the_documented_tap_order():
    # each output adds its taps by input channel ascending, kernel row and column descending
    rng = np.random.default_rng(5)
    x = E4M3.quantize(rng.normal(size=(1, 4, 3, 4)) * 8)
    w = E4M3.quantize(rng.normal(size=(4, 2, 3, 2)) * 8)
    stride, top, left = (2, 1), 1, 0
    out = kernels.minifloat_conv_transpose2d(x, w, x_format=E4M3, w_format=E4M3, acc_format=FP16,
                                             stride=stride, padding=(top, left, 0, 0), groups=2)  # fmt: skip
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
