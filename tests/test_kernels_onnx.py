"""Integer kernels against onnxruntime: MatMulInteger / ConvInteger (int32 accumulation with zero
points) and QLinearMatMul / QLinearConv (requantized outputs), bit-exact, int8 and uint8,
per-tensor and per-channel."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from plans import plan_of

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

IR_VERSION = 9
OPSET = 19
DTYPES = {np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8}


def _run(node, inputs: dict[str, np.ndarray], initializers: dict[str, np.ndarray], out_type, out_rank):
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info("y", out_type, [None] * out_rank)],
        [onnx.numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


def _codes(rng, dtype, shape, bits=8):
    """Random codes of `dtype` using `bits` of it (7 keeps u8 x s8 pair sums inside int16)."""
    info = np.iinfo(dtype)
    lo, hi = (info.min >> (8 - bits), info.max >> (8 - bits))
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def _weight_bits(a_type, b_type) -> int:
    """onnxruntime's u8 x s8 kernels on AVX2 (vpmaddubsw) saturate the int16 sum of two adjacent
    products; quantizers avoid it with 7-bit weights (reduce_range), and so do these tests.
    Every other combination is checked with full 8-bit codes."""
    return 7 if {a_type, b_type} == {np.uint8, np.int8} else 8


def _zero_point(rng, dtype, shape=()):
    """Zero points in the middle half of the code range."""
    info = np.iinfo(dtype)
    return rng.integers((3 * info.min + info.max) // 4, (info.min + 3 * info.max) // 4 + 1, shape).astype(dtype)


@pytest.mark.parametrize("a_type", [np.uint8, np.int8])
@pytest.mark.parametrize("b_type", [np.uint8, np.int8])
@pytest.mark.parametrize("per_column", [False, True])
def test_matmul_integer_is_gemm_with_a_32_bit_wrapping_accumulator(a_type, b_type, per_column):
    rng = np.random.default_rng(1)
    bits = _weight_bits(a_type, b_type)
    a = _codes(rng, a_type, (17, 300), bits if a_type is np.int8 else 8)
    b = _codes(rng, b_type, (300, 9), bits if b_type is np.int8 else 8)
    a_zp = _zero_point(rng, a_type)
    b_zp = _zero_point(rng, b_type, (9,) if per_column else ())
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zp", "b_zp"], ["y"])
    got = _run(node, {"a": a, "b": b}, {"a_zp": a_zp, "b_zp": b_zp}, TensorProto.INT32, 2)
    ours, stats = kernels.gemm(a.astype(np.int64) - a_zp, b.astype(np.int64) - b_zp, plan_of(acc_bits=32, acc_overflow="wrap"))  # fmt: skip
    assert np.array_equal(ours, got)
    assert stats.acc_saturations == 0


@pytest.mark.parametrize("x_type", [np.uint8, np.int8])
@pytest.mark.parametrize("group", [1, 4])
def test_conv_integer_pads_with_the_zero_point_and_matches_conv2d(x_type, group):
    rng = np.random.default_rng(2)
    x = _codes(rng, x_type, (2, 8, 9, 7))
    w = _codes(rng, x_type, (6 if group == 1 else 8, 8 // group, 3, 2))
    x_zp, w_zp = _zero_point(rng, x.dtype), _zero_point(rng, w.dtype)
    attrs = {"pads": [1, 0, 2, 1], "strides": [2, 1], "dilations": [1, 2], "group": group}
    node = helper.make_node("ConvInteger", ["x", "w", "x_zp", "w_zp"], ["y"], **attrs)
    got = _run(node, {"x": x}, {"w": w, "x_zp": x_zp, "w_zp": w_zp}, TensorProto.INT32, 4)
    ours, _ = kernels.conv2d(x.astype(np.int64) - x_zp, w.astype(np.int64) - w_zp, plan_of(acc_bits=32, acc_overflow="wrap"), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=group)  # fmt: skip
    assert np.array_equal(ours, got)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("per_column", [False, True])
def test_qlinear_matmul_output_is_bit_exact(dtype, per_column):
    rng = np.random.default_rng(3)
    a, b = _codes(rng, dtype, (33, 128)), _codes(rng, dtype, (128, 10))
    a_zp, b_zp, y_zp = _zero_point(rng, dtype), _zero_point(rng, dtype), _zero_point(rng, dtype)
    a_s = np.float32(0.02)
    b_s = rng.uniform(0.001, 0.01, (10,) if per_column else ()).astype(np.float32)
    y_s = np.float32(0.06)
    if per_column:
        b_zp = np.zeros(10, dtype) + b_zp
    node = helper.make_node("QLinearMatMul", ["a", "a_s", "a_zp", "b", "b_s", "b_zp", "y_s", "y_zp"], ["y"])
    init = {"a_s": a_s, "a_zp": a_zp, "b": b, "b_s": b_s, "b_zp": b_zp, "y_s": y_s, "y_zp": y_zp}
    got = _run(node, {"a": a}, {k: np.asarray(v) for k, v in init.items()}, DTYPES[dtype], 2)
    acc, _ = kernels.gemm(a.astype(np.int64) - a_zp, b.astype(np.int64) - b_zp, plan_of(acc_bits=32, acc_overflow="wrap"))  # fmt: skip
    ours = kernels.requantize_scale(acc, kernels.onnx_output_scale(a_s, b_s, y_s), zero_point=y_zp,
                                    out_bits=8, signed=dtype is np.int8)  # fmt: skip
    assert np.array_equal(ours, got)
    assert 0 < np.mean((got == np.iinfo(dtype).max) | (got == np.iinfo(dtype).min)) < 0.9


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("group", [1, 8])
def test_qlinear_conv_output_is_bit_exact(dtype, per_channel, group):
    rng = np.random.default_rng(4)
    n_out = 8
    x = _codes(rng, dtype, (1, 8, 10, 10))
    w = _codes(rng, np.int8, (n_out, 8 // group, 3, 3), _weight_bits(dtype, np.int8))
    x_zp, y_zp = _zero_point(rng, dtype), _zero_point(rng, dtype)
    w_zp = np.zeros(n_out if per_channel else (), np.int8)
    x_s, y_s = np.float32(0.05), np.float32(0.1)
    w_s = rng.uniform(0.002, 0.02, n_out if per_channel else ()).astype(np.float32)
    bias = rng.integers(-2000, 2000, n_out).astype(np.int32)
    node = helper.make_node("QLinearConv", ["x", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp", "B"],
                            ["y"], pads=[1, 1, 1, 1], strides=[1, 1], group=group)  # fmt: skip
    init = {"x_s": x_s, "x_zp": x_zp, "w": w, "w_s": w_s, "w_zp": w_zp, "y_s": y_s, "y_zp": y_zp, "B": bias}
    got = _run(node, {"x": x}, {k: np.asarray(v) for k, v in init.items()}, DTYPES[dtype], 4)
    acc, _ = kernels.conv2d(x.astype(np.int64) - x_zp, w.astype(np.int64), plan_of(acc_bits=32, acc_overflow="wrap"), padding=1, groups=group, bias=bias)  # fmt: skip
    scale = np.reshape(kernels.onnx_output_scale(x_s, w_s, y_s), (-1, 1, 1))
    ours = kernels.requantize_scale(acc, scale, zero_point=y_zp, out_bits=8, signed=dtype is np.int8)
    assert np.array_equal(ours, got)
    assert 0 < np.mean((got == np.iinfo(dtype).max) | (got == np.iinfo(dtype).min)) < 0.9
