"""Requantization, pooling, element-wise and power-of-two kernels against apytypes, onnxruntime
and exact Fraction / Python-int references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import kernels
from plans import plan_of
from formats.errors import RsimError

ROUNDINGS = ["nearest_even", "nearest_away", "nearest_up", "floor", "toward_zero"]


def _round_fraction(q: Fraction, rounding: str) -> int:
    """Exact rounding of a rational to an integer (the modes' definitions, written out)."""
    fl = math.floor(q)
    frac = q - fl
    if rounding == "floor" or frac == 0:
        return fl
    if rounding == "toward_zero":
        return fl + (1 if q < 0 else 0)
    if frac != Fraction(1, 2):
        return fl + (1 if frac > Fraction(1, 2) else 0)
    return {"nearest_up": fl + 1, "nearest_away": fl + (1 if q > 0 else 0),
            "nearest_even": fl + (fl % 2)}[rounding]  # fmt: skip


def _accumulators(rng, n=4000, bits=40):
    acc = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), n)
    acc[: n // 4] = (acc[: n // 4] >> 6 << 6) | 32  # exact ties at a shift of 6
    acc[n // 4 : n // 2] = rng.integers(-300, 300, n // 4)
    return acc


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_requantize_shift_matches_apytypes_cast(rounding, overflow):
    apy = pytest.importorskip("apytypes")
    q = apy.QuantizationMode
    modes = {"nearest_even": q.RND_CONV, "nearest_away": q.RND_INF, "nearest_up": q.RND,
             "floor": q.TRN, "toward_zero": q.TRN_ZERO}  # fmt: skip
    over = apy.OverflowMode.SAT if overflow == "saturate" else apy.OverflowMode.WRAP
    rng = np.random.default_rng(0)
    acc = _accumulators(rng)
    for shift, out_bits in ((6, 8), (6, 30), (0, 12), (17, 16), (33, 5)):
        ours = kernels.requantize_shift(acc, shift, out_bits=out_bits, rounding=rounding, overflow=overflow)
        # a source wider than 64 bits makes apytypes 0.5.1 wrap casts wrong; 41 bits hold acc
        fixed = apy.APyFixedArray.from_float(acc / 2.0**shift, bits=41, frac_bits=shift)
        ref = fixed.cast(int_bits=out_bits, frac_bits=0, quantization=modes[rounding], overflow=over)
        assert np.array_equal(ours, ref.to_numpy().astype(np.int64)), (shift, out_bits)


def test_requantize_shift_symmetric_unsigned_and_left_shifts_follow_the_exact_definition():
    rng = np.random.default_rng(1)
    acc = _accumulators(rng, 600, bits=30)
    shift = rng.integers(-5, 12, (600,))
    for signed, overflow, out_bits in ((True, "saturate_symmetric", 8), (False, "saturate", 8),
                                       (False, "wrap", 6)):  # fmt: skip
        ours = kernels.requantize_shift(acc, shift, out_bits=out_bits, signed=signed, overflow=overflow,
                                        rounding="nearest_even")  # fmt: skip
        for x, s, y in zip(acc, shift, ours):
            v = _round_fraction(Fraction(int(x), 2 ** int(s)) if s >= 0 else Fraction(int(x) << -int(s)),
                                "nearest_even")  # fmt: skip
            if overflow == "wrap":
                v %= 2**out_bits
            elif signed:
                v = max(min(v, 2 ** (out_bits - 1) - 1), -(2 ** (out_bits - 1)) + 1)
            else:
                v = max(min(v, 2**out_bits - 1), 0)
            assert y == v


def test_stochastic_requantization_is_floor_of_value_plus_the_generators_uniform():
    rng = np.random.default_rng(2)
    acc = _accumulators(rng, 2000, bits=50)
    shifts = rng.integers(0, 60, 2000)
    ours = kernels.requantize_shift(acc, shifts, out_bits=64, rounding="stochastic",
                                    rng=np.random.default_rng(99))  # fmt: skip
    draws = np.random.default_rng(99).random(2000)
    ref = [math.floor(Fraction(int(x), 2 ** int(s)) + Fraction(float(u))) for x, s, u in zip(acc, shifts, draws)]
    assert ours.tolist() == ref
    mean = kernels.requantize_shift(np.full(20000, 1), 2, out_bits=8, rounding="stochastic",
                                    rng=np.random.default_rng(5)).mean()  # fmt: skip
    assert abs(mean - 0.25) < 0.02


def _gemmlowp_reference(x: int, multiplier: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier as documented (gemmlowp fixed-point helpers)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = x * (1 << left)
    if a == multiplier == -(2**31):
        high = 2**31 - 1
    else:
        ab = a * multiplier
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        total = ab + nudge
        high = abs(total) // (1 << 31) * (1 if total >= 0 else -1)  # C division truncates
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if remainder > threshold else 0)


def test_tflite_multiplier_requantization_matches_gemmlowp_and_stays_within_one_of_exact():
    rng = np.random.default_rng(3)
    reals = np.concatenate([rng.uniform(1e-5, 0.99, 200), rng.uniform(1.0, 30.0, 20)])
    multipliers, shifts = kernels.quantize_multiplier(reals)
    assert ((multipliers >= 2**30) & (multipliers < 2**31)).all()
    assert np.allclose(multipliers * np.exp2(shifts - 31.0), reals, rtol=2**-30, atol=0)
    acc = rng.integers(-(2**20), 2**20, 220)
    acc[:50] = rng.integers(-300, 300, 50)
    ours = kernels.requantize_multiplier(acc, multipliers, shifts, out_bits=32, zero_point=3)
    exact = kernels.requantize_multiplier(acc, multipliers, shifts, out_bits=32, zero_point=3,
                                          method="exact", rounding="nearest_away")  # fmt: skip
    for x, m, s, y, e in zip(acc, multipliers, shifts, ours, exact):
        assert y == _gemmlowp_reference(int(x), int(m), int(s)) + 3
        assert e == _round_fraction(Fraction(int(x) * int(m)) * Fraction(2) ** (int(s) - 31), "nearest_away") + 3
        assert abs(y - e) <= 1


def test_scale_requantization_rounds_ties_to_even_and_clamps_around_the_zero_point():
    acc = np.array([5, 15, 25, -5, 1000, 2000, -2000, 7])
    got = kernels.requantize_scale(acc, np.float32(0.1), zero_point=-3, out_bits=8, signed=True)
    assert got.tolist() == [0 - 3, 2 - 3, 2 - 3, 0 - 3, 100 - 3, 127, -128, 1 - 3]


def _window_reference(x, kernel, stride, pads, ceil_mode):
    """Yields (n, c, y, x, taps inside the input, taps inside the padded input)."""
    n_b, n_c, h, w = x.shape
    top, left, bottom, right = pads

    def size(extent, k, s, before, after):
        span = extent + before + after - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        return out - 1 if ceil_mode and (out - 1) * s >= extent + before else out

    oh, ow = size(h, kernel[0], stride[0], top, bottom), size(w, kernel[1], stride[1], left, right)
    for n in range(n_b):
        for c in range(n_c):
            for y in range(oh):
                for xo in range(ow):
                    rows = range(y * stride[0] - top, y * stride[0] - top + kernel[0])
                    cols = range(xo * stride[1] - left, xo * stride[1] - left + kernel[1])
                    inside = [int(x[n, c, i, j]) for i in rows for j in cols if 0 <= i < h and 0 <= j < w]
                    padded = sum(1 for i in rows for j in cols if -top <= i < h + bottom and -left <= j < w + right)
                    yield (n, c, y, xo), inside, padded, (oh, ow)


@pytest.mark.parametrize("dilation, pads", [((1, 1), (1, 1, 1, 1)), ((3, 2), (4, 3, 2, 1))])
def test_float_max_pool_skips_padding_propagates_nan_and_fills_empty_windows(dilation, pads):
    """Float windows as ONNX MaxPool sees them: padding never wins, a NaN in a window is its
    maximum, and a dilated window left with no tap inside the input is -inf."""
    x = np.random.default_rng(6).normal(size=(2, 2, 7, 9)).astype(np.float32)
    x[0, 1, 3, 4] = np.nan
    (kh, kw), (sh, sw), (dh, dw) = (2, 3), (1, 2), dilation
    top, left, bottom, right = pads
    out = kernels.max_pool2d(x, (kh, kw), stride=(sh, sw), padding=pads, dilation=dilation)
    oh = (7 + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (9 + left + right - dw * (kw - 1) - 1) // sw + 1
    assert out.shape == (2, 2, oh, ow) and out.dtype == np.float32
    empty = 0
    for (n, c, y, xo), value in np.ndenumerate(out):
        taps = [x[n, c, i, j] for i in range(y * sh - top, y * sh - top + kh * dh, dh)
                for j in range(xo * sw - left, xo * sw - left + kw * dw, dw)
                if 0 <= i < 7 and 0 <= j < 9]  # fmt: skip
        empty += not taps
        expected = -np.inf if not taps else (np.nan if np.isnan(taps).any() else max(taps))
        np.testing.assert_equal(value, expected)
    assert empty == (0 if dilation == (1, 1) else 2 * 2 * ow)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_pooling_windows_and_average_rounding_match_the_exact_definition(ceil_mode, count_include_pad):
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (2, 3, 7, 8))
    kernel, stride, pads = (3, 2), (2, 2), (1, 0, 1, 1)
    mx = kernels.max_pool2d(x, kernel, stride=stride, padding=pads, ceil_mode=ceil_mode)
    avgs = {r: kernels.avg_pool2d(x, kernel, stride=stride, padding=pads, ceil_mode=ceil_mode,
                                  count_include_pad=count_include_pad, rounding=r) for r in ROUNDINGS}  # fmt: skip
    for idx, inside, padded, shape in _window_reference(x, kernel, stride, pads, ceil_mode):
        assert mx.shape[2:] == shape and mx[idx] == max(inside)
        count = padded if count_include_pad else len(inside)
        for rounding, avg in avgs.items():
            assert avg[idx] == _round_fraction(Fraction(sum(inside), count), rounding)


@pytest.mark.parametrize("kernel, stride, ceil_mode", [((2, 2), (2, 2), False), ((3, 3), (3, 3), False),
                                                      ((3, 2), (1, 2), False), ((3, 3), (2, 3), True)])
@pytest.mark.parametrize("dtype", [np.int8, np.int64])
def test_unpadded_max_pool_is_the_window_maximum(kernel, stride, ceil_mode, dtype):
    x = np.random.default_rng(5).integers(-128, 128, (2, 3, 8, 9)).astype(dtype)
    mx = kernels.max_pool2d(x, kernel, stride=stride, ceil_mode=ceil_mode)
    assert mx.dtype == dtype  # a maximum needs no wider type
    for idx, inside, _, shape in _window_reference(x, kernel, stride, (0, 0, 0, 0), ceil_mode):
        assert mx.shape[2:] == shape and mx[idx] == max(inside)


def test_average_pool_window_counts_agree_with_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (1, 2, 7, 8))
    for ceil_mode in (0, 1):
        for include in (0, 1):
            node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2],
                                    pads=[1, 0, 1, 1], ceil_mode=ceil_mode, count_include_pad=include)  # fmt: skip
            graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])  # fmt: skip
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            ref = sess.run(None, {"x": x.astype(np.float32)})[0]  # window means, exact enough to floor
            ours = kernels.avg_pool2d(x, (3, 2), stride=2, padding=(1, 0, 1, 1), ceil_mode=bool(ceil_mode),
                                      count_include_pad=bool(include), rounding="floor")  # fmt: skip
            assert np.array_equal(ours, np.floor(ref).astype(np.int64))


def test_stochastic_average_pool_is_floor_of_mean_plus_uniform():
    x = np.arange(2 * 5 * 5).reshape(1, 2, 5, 5) * 7 % 23 - 11
    ours = kernels.avg_pool2d(x, 3, stride=1, rounding="stochastic", rng=np.random.default_rng(8))
    draws = np.random.default_rng(8).random(ours.size).reshape(ours.shape)
    for idx in np.ndindex(ours.shape):
        window = x[idx[0], idx[1], idx[2]:idx[2] + 3, idx[3]:idx[3] + 3]
        assert ours[idx] == math.floor(Fraction(int(window.sum()), 9) + Fraction(float(draws[idx])))


def test_add_aligned_is_the_exact_sum_rounded_once_to_the_output_grid():
    rng = np.random.default_rng(9)
    a, b = rng.integers(-128, 128, 500), rng.integers(-2**12, 2**12, 500)
    for rounding in ROUNDINGS:
        out = kernels.add_aligned(a, 5, b, 9, out_frac=4, out_bits=8, rounding=rounding)
        for x, y, z in zip(a, b, out):
            exact = Fraction(int(x), 2**5) + Fraction(int(y), 2**9)
            assert z == max(min(_round_fraction(exact * 2**4, rounding), 127), -128)


@pytest.mark.parametrize("fl", [-7, 0, 4, 60, 512])
def test_fixed_values_are_the_exact_rationals_of_the_codes(fl):
    codes = np.concatenate([np.random.default_rng(fl % 7).integers(-(2**40), 2**40, 500),
                            [0, 1, -1, 2**53 - 1, -(2**53)]]).reshape(5, 101)  # fmt: skip
    got = kernels.fixed_values(codes.astype(np.int64), fl)
    assert got.dtype == np.float64 and got.shape == codes.shape
    assert all(Fraction(float(v)) == Fraction(int(c), 1) / Fraction(2) ** fl
               for v, c in zip(got.ravel(), codes.ravel()))  # fmt: skip
    assert np.array_equal(kernels.fixed_values(codes[:, :3].astype(np.int16) % 100, 2),
                          (codes[:, :3].astype(np.int16) % 100) / 4.0)  # fmt: skip


def test_relu_family_clamps_codes_around_the_zero_point():
    x = np.array([-128, -3, 0, 5, 100, 127])
    assert kernels.relu(x, zero_point=-3).tolist() == [-3, -3, 0, 5, 100, 127]
    assert kernels.relu6(x, six=90, zero_point=-3).tolist() == [-3, -3, 0, 5, 90, 90]
    assert kernels.clip(x, -10, 10).tolist() == [-10, -3, 0, 5, 10, 10]
    with pytest.raises(RsimError, match="^lo, hi"):
        kernels.clip(x, 3, 2)


def test_power_of_two_weights_through_gemm_equal_the_exact_rational_dot_product():
    rng = np.random.default_rng(10)
    x = rng.integers(-128, 128, (6, 40))
    sign = rng.integers(-1, 2, (40, 5))
    exponent = rng.integers(-7, 2, (40, 5))
    w = kernels.pow2_to_int(sign, exponent, exp_min=-7)
    out, _ = kernels.gemm(x, w, plan_of(acc_bits=32))
    for m in range(6):
        for n in range(5):
            exact = sum(Fraction(int(x[m, k]) * int(sign[k, n])) * Fraction(2) ** int(exponent[k, n]) for k in range(40))
            assert Fraction(int(out[m, n]), 2**7) == exact
    with pytest.raises(RsimError, match="^exponent"):
        kernels.pow2_to_int(np.array([1]), np.array([-8]), exp_min=-7)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kernels.requantize_shift(np.array([1]), 70, out_bits=8), "shift"),
        (lambda: kernels.requantize_shift(np.array([1]), 1, out_bits=0), "out_bits"),
        (lambda: kernels.requantize_shift(np.array([1.5]), 1, out_bits=8), "acc"),
        (lambda: kernels.requantize_shift(np.array([1]), 1, out_bits=8, rounding="stochastic"), "rng"),
        (lambda: kernels.requantize_shift(np.ones(3, int), np.ones(2, int), out_bits=8), "shift"),
        (lambda: kernels.requantize_multiplier(np.array([1]), 2**31, 0, out_bits=8), "multiplier"),
        (lambda: kernels.requantize_multiplier(np.array([1]), 2**30, 0, out_bits=8, method="x"), "method"),
        (lambda: kernels.avg_pool2d(np.ones((1, 1, 2, 2), int), 3), "kernel"),
    ],
)
def test_bad_requant_and_pool_arguments_name_the_argument(call, name):
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        call()


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_requantize_to_range_is_the_exact_rounding_saturated_with_its_mask(rounding):
    rng = np.random.default_rng(3)
    acc = _accumulators(rng, 1500, bits=40)
    for (shift, lo, hi), dtype in zip(((6, -128, 127), (1, -(2**20), 2**20 - 1), (0, -100, 90),
                                       (40, -3, 3), (-4, -(2**40), 2**40), (62, -1, 0),
                                       (3, -129, 0)),
                                      (np.int8, np.int32, np.int8, np.int8, np.int64, np.int8,
                                       np.int16)):  # fmt: skip
        codes, saturated = kernels.requantize_to_range(acc, shift, lo, hi, rounding=rounding)
        assert codes.dtype == dtype  # the narrowest type that holds [lo, hi]
        exact = [_round_fraction(Fraction(int(x), 2**shift) if shift >= 0 else Fraction(int(x) << -shift),
                                 rounding) for x in acc]  # fmt: skip
        assert codes.tolist() == [min(max(v, lo), hi) for v in exact], shift
        assert saturated.tolist() == [not lo <= v <= hi for v in exact], shift


def test_stochastic_requantize_to_range_draws_like_requantize_shift():
    acc = _accumulators(np.random.default_rng(4), 3000, bits=30)
    codes, saturated = kernels.requantize_to_range(acc, 9, -500, 500, rounding="stochastic",
                                                   rng=np.random.default_rng(7))  # fmt: skip
    rounded = kernels.requantize_shift(acc, 9, out_bits=64, rounding="stochastic",
                                       rng=np.random.default_rng(7))  # fmt: skip
    assert np.array_equal(codes, np.clip(rounded, -500, 500))
    assert np.array_equal(saturated, np.abs(rounded) > 500) and saturated.any()


@pytest.mark.parametrize("shift", [1, 4, 40])
def test_average_pool_with_a_divisor_shift_rounds_the_mean_once(shift):
    """divisor_shift s: the window sum over count·2^s, one rounding in every mode (stochastic
    included, whose long division runs bit by bit once count·2^s passes 2^36)."""
    rng = np.random.default_rng(10)
    x = rng.integers(-2**40, 2**40, (1, 2, 5, 5))
    for rounding in ROUNDINGS:
        ours = kernels.avg_pool2d(x, 3, stride=2, padding=1, rounding=rounding,
                                  divisor_shift=shift)
        for idx, inside, _, _ in _window_reference(x, (3, 3), (2, 2), (1, 1, 1, 1), False):
            mean = Fraction(sum(inside), len(inside) * 2**shift)
            assert ours[idx] == _round_fraction(mean, rounding), (rounding, idx)
    ours = kernels.avg_pool2d(x, 3, stride=2, padding=1, rounding="stochastic", divisor_shift=shift,
                              rng=np.random.default_rng(11))
    draws = np.random.default_rng(11).random(ours.size).reshape(ours.shape)
    for idx, inside, _, _ in _window_reference(x, (3, 3), (2, 2), (1, 1, 1, 1), False):
        mean = Fraction(sum(inside), len(inside) * 2**shift)
        assert ours[idx] == math.floor(mean + Fraction(float(draws[idx])))
