"""The float convolution kernels against references written from the definition: the depthwise
kernel bit for bit against direct loops in its documented summation order and within the
rounding-error bound of the exact sum (Fractions); every path of `conv2d_float` (im2col,
row-shifted, 1x1, depthwise; batch chunks) within that bound of the sum taken output by output;
the whole float path of a MobileNetV2-like model against onnxruntime."""

from __future__ import annotations

import math
from fractions import Fraction
from unittest import mock

import numpy as np
import onnx
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import rsim
from formats.errors import RsimError
from kernels import fconv
from kernels.fconv import conv2d_float
from kernels.fdepthwise import depthwise_conv2d_float
from tests.imagenet_graphs import mobilenet_v2


@st.composite
def depthwise_cases(draw):
    """x, w, strides, pads, dilations, pad_value: small random depthwise problems (multiplier 1
    or 2) of any geometry with at least one output pixel, float32 or float64."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n, channels, multiplier = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(
        st.integers(1, 2))  # fmt: skip
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    strides = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilations = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    pads = draw(st.tuples(*[st.integers(0, 3)] * 4))
    size = []
    for axis in (0, 1):
        span = dilations[axis] * (kernel[axis] - 1) + 1  # the padded input must hold one window
        size.append(max(1, span - pads[axis] - pads[axis + 2] + draw(st.integers(0, 7))))
    values = st.floats(-8, 8, width=np.dtype(dtype).itemsize * 8)
    x = draw(arrays(dtype, (n, channels, *size), elements=values))
    w = draw(arrays(dtype, (channels * multiplier, 1, *kernel), elements=values))
    pad_value = draw(st.sampled_from([0.0, draw(values)]))
    return x, w, strides, pads, dilations, pad_value


def _products(x, w, strides, pads, dilations, pad_value):
    """Per output (b, o, oy, ox), its taps' (input value, weight) in row-major tap order, the
    input value being the pad value where the tap is outside x (plain Python loops)."""
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    n, channels, h, wd = x.shape
    out_ch, _, kh, kw = w.shape
    out_h = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    for b in range(n):
        for o in range(out_ch):
            c = o // (out_ch // channels)
            for oy in range(out_h):
                for ox in range(out_w):
                    taps = []
                    for i in range(kh):
                        for j in range(kw):
                            r, col = oy * sh - top + i * dh, ox * sw - left + j * dw
                            inside = 0 <= r < h and 0 <= col < wd
                            taps.append((x[b, c, r, col] if inside else pad_value, w[o, 0, i, j]))
                    yield (b, o, oy, ox), taps


def _ordered_reference(x, w, strides, pads, dilations, pad_value):
    """The documented order: +0.0, then each tap's product added, the product and the sum each
    rounded to x's dtype. Computed in float64 and rounded once per operation, which for float32
    gives the correctly rounded float32 result (53 >= 2·24 + 2 bits: no double-rounding error)."""
    to_dtype = x.dtype.type
    out = {}
    for index, taps in _products(x, w, strides, pads, dilations, float(to_dtype(pad_value))):
        acc = 0.0
        for value, weight in taps:
            acc = float(to_dtype(acc + float(to_dtype(float(value) * float(weight)))))
        out[index] = acc
    return out


@settings(max_examples=150, deadline=None)
@given(depthwise_cases(), st.sampled_from(["depthwise_conv2d_float", "conv2d_float"]))
def test_depthwise_sums_in_the_documented_order_bit_for_bit(case, entry):
    x, w, strides, pads, dilations, pad_value = case
    if entry == "depthwise_conv2d_float":
        got = depthwise_conv2d_float(x, w, strides, pads, dilations, pad_value)
    else:  # the convolution entry point takes the kernel for groups = channels > 1
        assume(x.shape[1] > 1)
        got = conv2d_float(x, w, strides, pads, dilations, x.shape[1], pad_value)
    want = _ordered_reference(x, w, strides, pads, dilations, pad_value)
    assert got.dtype == x.dtype
    assert got.shape == tuple(d + 1 for d in max(want))
    for index, value in want.items():
        assert got[index] == value, (index, got[index], value)


@settings(max_examples=60, deadline=None)
@given(depthwise_cases())
def test_depthwise_is_within_the_rounding_bound_of_the_exact_sum(case):
    # Recursive summation of K rounded products errs by at most γ_K·Σ|x·w|,
    # γ_K = K·u/(1 − K·u) with u the unit roundoff (Higham, Accuracy and Stability, eq. 3.5),
    # plus K smallest subnormals where products underflow.
    x, w, strides, pads, dilations, pad_value = case
    got = depthwise_conv2d_float(x, w, strides, pads, dilations, pad_value)
    info = np.finfo(x.dtype)
    taps = w.shape[2] * w.shape[3]
    unit = float(info.eps) / 2
    gamma = taps * unit / (1 - taps * unit)
    pad_value = float(x.dtype.type(pad_value))
    for index, products in _products(x, w, strides, pads, dilations, pad_value):
        exact = sum((Fraction(float(v)) * Fraction(float(wt)) for v, wt in products), Fraction())
        magnitude = math.fsum(abs(float(v) * float(wt)) for v, wt in products)
        bound = gamma * magnitude + taps * float(info.smallest_subnormal)
        assert abs(Fraction(float(got[index])) - exact) <= Fraction(bound) * (1 + 1e-12), index


@st.composite
def conv_cases(draw):
    """x, w, strides, pads, dilations, groups, pad_value: small random grouped convolutions; up
    to 8 input channels per group so that 3-wide kernels reach the row-shifted GEMMs."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    groups, out_per_group = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    in_per_group = draw(st.one_of(st.integers(1, 3), st.integers(6, 8)))
    kernel = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    strides = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    dilations = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    pads = draw(st.tuples(*[st.integers(0, 2)] * 4))
    size = []
    for axis in (0, 1):
        span = dilations[axis] * (kernel[axis] - 1) + 1
        size.append(max(1, span - pads[axis] - pads[axis + 2] + draw(st.integers(0, 5))))
    values = st.floats(-8, 8, width=np.dtype(dtype).itemsize * 8)
    x = draw(arrays(dtype, (draw(st.integers(1, 3)), groups * in_per_group, *size),
                    elements=values))  # fmt: skip
    w = draw(arrays(dtype, (groups * out_per_group, in_per_group, *kernel), elements=values))
    pad_value = draw(st.sampled_from([0.0, draw(values)]))
    return x, w, strides, pads, dilations, groups, pad_value


@settings(max_examples=120, deadline=None)
@given(conv_cases(), st.sampled_from([64, 1 << 21]))
@example(  # 1x1, stride 2, padding 1 on 2x2: the output is as large as the input, yet shifted
    (np.arange(8.0).reshape(1, 2, 2, 2), np.ones((1, 2, 1, 1)), (2, 2), (1, 1, 1, 1), (1, 1), 1,
     0.5), 1 << 21)  # fmt: skip
def test_conv2d_float_is_within_the_rounding_bound_of_each_outputs_sum(case, gather_bytes):
    # Any order of summing K products errs by at most γ_K·Σ|x·w| (Higham, eq. 3.5), whatever
    # BLAS does; the reference, math.fsum of float64 products, by at most u64·Σ|x·w| more.
    # A 64-byte gather budget makes every batch run one sample per chunk.
    x, w, strides, pads, dilations, groups, pad_value = case
    with mock.patch.object(fconv, "_GATHER_BYTES", gather_bytes):
        got = conv2d_float(x, w, strides, pads, dilations, groups, pad_value)
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    out_ch, in_per_group, kh, kw = w.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)),
                    constant_values=float(x.dtype.type(pad_value)))  # fmt: skip
    out_h = (padded.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (padded.shape[3] - dw * (kw - 1) - 1) // sw + 1
    assert got.shape == (x.shape[0], out_ch, out_h, out_w) and got.dtype == x.dtype
    taps = in_per_group * kh * kw
    unit = float(np.finfo(x.dtype).eps) / 2
    gamma = taps * unit / (1 - taps * unit) + 2.0**-53
    tiny = taps * float(np.finfo(x.dtype).smallest_subnormal)
    for (b, o, oy, ox), value in np.ndenumerate(got):
        c = o // (out_ch // groups) * in_per_group
        window = padded[b, c : c + in_per_group, oy * sh : oy * sh + dh * (kh - 1) + 1 : dh,
                        ox * sw : ox * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
        products = (window * w[o].astype(np.float64)).ravel()
        exact = math.fsum(products)
        bound = gamma * math.fsum(np.abs(products)) + tiny
        assert abs(float(value) - exact) <= bound * (1 + 1e-9), (b, o, oy, ox)


def test_depthwise_rejects_weights_that_are_not_depthwise_and_mixed_dtypes():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(RsimError, match="not depthwise"):
        depthwise_conv2d_float(x, np.zeros((6, 1, 3, 3), np.float32), (1, 1), (0,) * 4, (1, 1))
    with pytest.raises(RsimError, match="float32 or float64"):
        depthwise_conv2d_float(x, np.zeros((4, 1, 3, 3)), (1, 1), (0,) * 4, (1, 1))


def test_mobilenet_v2_float_path_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = mobilenet_v2(size=64, width=0.35, classes=100)
    path = tmp_path / "mobilenet_v2.onnx"
    onnx.save(model, path)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"input": x})
    network = rsim.load(path)
    got = network.run_float(x)[network.outputs[0]]
    assert got.shape == want.shape == (2, 100)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
