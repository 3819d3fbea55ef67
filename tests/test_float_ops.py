"""Single operators in rsim's float path agree with onnxruntime on the configurations exporters
produce and the ONNX node tests leave out (groups with dilation, depthwise multipliers, ceil-mode
pooling with padding, transposed-conv output shapes, pad modes, opset spellings), and the
float64 path agrees with a direct float64 definition of convolution."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import rsim
from tests.onnx_graphs import IR_VERSION

RNG = np.random.default_rng(1234)


def _model(nodes, x_shape, consts: dict[str, np.ndarray], opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION
    )
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _w(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


N = helper.make_node
CASES = {
    "conv groups=2 dilation=2 stride=2 asymmetric pads": (
        [
            N(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                group=2,
                dilations=[2, 2],
                strides=[2, 2],
                pads=[1, 0, 2, 3],
            )
        ],
        (2, 4, 11, 12),
        {"w": _w(6, 2, 3, 3), "b": _w(6)},
        13,
    ),
    "depthwise conv with channel multiplier 2, stride 2": (
        [N("Conv", ["x", "w"], ["y"], group=4, strides=[2, 2], pads=[1, 1, 1, 1])],
        (2, 4, 9, 9),
        {"w": _w(8, 1, 3, 3)},
        13,
    ),
    "depthwise conv same_lower": (
        [N("Conv", ["x", "w"], ["y"], group=3, auto_pad="SAME_LOWER")],
        (1, 3, 8, 7),
        {"w": _w(3, 1, 3, 3)},
        11,
    ),
    "1x1 conv stride 2 with pads": (
        [N("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 0, 0])],
        (2, 5, 6, 6),
        {"w": _w(3, 5, 1, 1), "b": _w(3)},
        13,
    ),
    "conv same_upper stride 2 (asymmetric padding)": (
        [N("Conv", ["x", "w"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER")],
        (1, 2, 8, 8),
        {"w": _w(4, 2, 4, 4)},
        9,
    ),
    "conv_transpose groups 2 stride 2 output_padding dilation": (
        [
            N(
                "ConvTranspose",
                ["x", "w", "b"],
                ["y"],
                group=2,
                strides=[2, 2],
                output_padding=[1, 0],
                dilations=[2, 1],
                pads=[1, 0, 0, 1],
            )
        ],
        (2, 4, 5, 6),
        {"w": _w(4, 3, 3, 3), "b": _w(6)},
        13,
    ),
    "conv_transpose output_shape same_upper": (
        [
            N(
                "ConvTranspose",
                ["x", "w"],
                ["y"],
                strides=[2, 2],
                output_shape=[10, 9],
                auto_pad="SAME_UPPER",
            )
        ],
        (1, 2, 5, 5),
        {"w": _w(2, 3, 3, 3)},
        13,
    ),
    "conv_transpose followed by batchnorm (folded)": (
        [
            N("ConvTranspose", ["x", "w"], ["t"], group=2, strides=[2, 2]),
            N("BatchNormalization", ["t", "g", "be", "m", "v"], ["y"]),
        ],
        (2, 4, 4, 4),
        {"w": _w(4, 2, 2, 2), "g": _w(4), "be": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5},
        13,
    ),
    "maxpool ceil_mode with pads and dilation": (
        [
            N(
                "MaxPool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                dilations=[2, 2],
                ceil_mode=1,
            )
        ],
        (2, 3, 10, 11),
        {},
        12,
    ),
    "avgpool ceil_mode count_include_pad=1": (
        [
            N(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
                count_include_pad=1,
            )
        ],
        (2, 3, 10, 11),
        {},
        19,
    ),
    "avgpool ceil_mode count_include_pad=0": (
        [
            N(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 0, 1, 0],
                ceil_mode=1,
            )
        ],
        (2, 3, 10, 11),
        {},
        19,
    ),
    "pad reflect": (
        [N("Pad", ["x", "p"], ["y"], mode="reflect")],
        (2, 3, 5, 5),
        {"p": _i64(0, 0, 2, 1, 0, 0, 1, 2)},
        13,
    ),
    "pad edge": (
        [N("Pad", ["x", "p"], ["y"], mode="edge")],
        (2, 3, 5, 5),
        {"p": _i64(0, 0, 2, 1, 0, 0, 1, 2)},
        13,
    ),
    "pad wrap": (
        [N("Pad", ["x", "p"], ["y"], mode="wrap")],
        (2, 3, 5, 5),
        {"p": _i64(0, 0, 2, 1, 0, 0, 1, 2)},
        19,
    ),
    "pad constant with negative pads (cropping), opset 2 attributes at opset 10": (
        [N("Pad", ["x"], ["y"], pads=[0, 0, -1, 2, 0, 0, 1, -2], value=1.5)],
        (2, 3, 5, 5),
        {},
        10,
    ),
    "softmax opset 11 flattens from axis 1": (
        [N("Softmax", ["x"], ["y"], axis=1)],
        (2, 3, 4, 5),
        {},
        11,
    ),
    "softmax opset 13 along axis 1 only": (
        [N("Softmax", ["x"], ["y"], axis=1)],
        (2, 3, 4, 5),
        {},
        13,
    ),
    "lrn size 5": (
        [N("LRN", ["x"], ["y"], size=5, alpha=0.01, beta=0.6, bias=2.0)],
        (2, 7, 3, 3),
        {},
        13,
    ),
    "clip opset 9 attributes (relu6)": (
        [N("Clip", ["x"], ["y"], min=0.0, max=6.0)],
        (2, 3, 4, 4),
        {},
        9,
    ),
    "clip opset 13 with max only": (
        [N("Clip", ["x", "", "hi"], ["y"])],
        (2, 3, 4, 4),
        {"hi": np.float32(0.5)},
        13,
    ),
    "gemm transA alpha beta with per-row bias": (
        [N("Gemm", ["x", "w", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)],
        (6, 4),
        {"w": _w(6, 3), "c": _w(4, 3)},
        13,
    ),
    "gemm transB then batchnorm (folded)": (
        [
            N("Gemm", ["x", "w", "c"], ["t"], transB=1),
            N("BatchNormalization", ["t", "g", "be", "m", "v"], ["y"]),
        ],
        (5, 6),
        {"w": _w(4, 6), "c": _w(4), "g": _w(4), "be": _w(4), "m": _w(4), "v": np.abs(_w(4)) + 0.5},
        9,
    ),
    "matmul of 3-D activation by a constant (gemm on the last axis) plus bias": (
        [N("MatMul", ["x", "w"], ["t"]), N("Add", ["t", "b"], ["y"])],
        (2, 3, 5),
        {"w": _w(5, 4), "b": _w(4)},
        13,
    ),
    "matmul with the constant on the left": (
        [N("MatMul", ["w", "x"], ["y"])],
        (2, 5, 3),
        {"w": _w(4, 5)},
        13,
    ),
    "batchnorm after relu (not foldable)": (
        [
            N("Relu", ["x"], ["t"]),
            N("BatchNormalization", ["t", "g", "be", "m", "v"], ["y"], epsilon=1e-3),
        ],
        (2, 3, 4, 4),
        {"g": _w(3), "be": _w(3), "m": _w(3), "v": np.abs(_w(3)) + 0.5},
        15,
    ),
    "conv then sub of a per-channel constant (folded into the bias)": (
        [N("Conv", ["x", "w"], ["t"]), N("Sub", ["t", "c"], ["y"])],
        (2, 2, 5, 5),
        {"w": _w(3, 2, 3, 3), "c": _w(3, 1, 1)},
        13,
    ),
    "conv then mul and div by constants": (
        [N("Conv", ["x", "w"], ["t"]), N("Mul", ["t", "c"], ["u"]), N("Div", ["d", "u"], ["y"])],
        (2, 2, 5, 5),
        {"w": _w(3, 2, 3, 3), "c": _w(1, 3, 1, 1), "d": np.float32(3.0)},
        13,
    ),
    "sigmoid tanh leaky_relu hard_sigmoid hard_swish on large values": (
        [
            N("Sigmoid", ["x"], ["a"]),
            N("Tanh", ["a"], ["b"]),
            N("LeakyRelu", ["x"], ["c"], alpha=0.2),
            N("HardSigmoid", ["c"], ["d"], alpha=0.3, beta=0.4),
            N("HardSwish", ["x"], ["e"]),
            N("Add", ["b", "d"], ["f"]),
            N("Add", ["f", "e"], ["y"]),
        ],
        (3, 50),
        {},
        14,
    ),
    "squeeze without axes, unsqueeze negative axes, transpose default, flatten axis 0": (
        [
            N("Squeeze", ["x"], ["a"]),
            N("Unsqueeze", ["a", "ax"], ["b"]),
            N("Transpose", ["b"], ["c"]),
            N("Flatten", ["c"], ["y"], axis=0),
        ],
        (2, 1, 3, 1),
        {"ax": _i64(-1, 1)},
        13,
    ),
    "concat of three branches on the channel axis": (
        [
            N("Relu", ["x"], ["a"]),
            N("Sigmoid", ["x"], ["b"]),
            N("Concat", ["a", "b", "x"], ["y"], axis=-3),
        ],
        (2, 3, 4, 4),
        {},
        13,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_operator_agrees_with_onnxruntime(name, tmp_path):
    nodes, x_shape, consts, opset = CASES[name]
    model = _model(nodes, x_shape, consts, opset)
    path = tmp_path / "op.onnx"
    onnx.save(model, path)
    x = (RNG.normal(size=x_shape) * (30 if "large" in name else 1)).astype(np.float32)
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    got = rsim.load(path).run_float(x)["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def _direct_conv_float64(x, w, b, stride, pads, dilation, groups):
    """Convolution from its definition, output pixel by kernel tap, in float64 (no im2col)."""
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    ho = (h - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[
                    :,
                    :,
                    i * dilation : i * dilation + stride * (ho - 1) + 1 : stride,
                    j * dilation : j * dilation + stride * (wo - 1) + 1 : stride,
                ]
                y[:, g * og : (g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * og : (g + 1) * og, :, i, j]
                )
    return y + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize(
    "groups, stride, dilation, pads",
    [(1, 1, 1, (1, 1, 1, 1)), (2, 2, 2, (0, 1, 2, 0)), (6, 1, 1, (1, 1, 1, 1))],
)
def test_float64_path_matches_direct_convolution_to_double_precision(
    tmp_path, groups, stride, dilation, pads
):
    w = _w(6, 6 // groups, 3, 3)
    b = _w(6)
    node = N(
        "Conv",
        ["x", "w", "b"],
        ["y"],
        group=groups,
        strides=[stride] * 2,
        dilations=[dilation] * 2,
        pads=list(pads),
    )
    path = tmp_path / "conv.onnx"
    onnx.save(_model([node], ("N", 6, 9, 10), {"w": w, "b": b}, 13), path)
    x = RNG.normal(size=(3, 6, 9, 10))
    got = rsim.load(path).run_float(x, dtype=np.float64)["y"]
    want = _direct_conv_float64(
        x, w.astype(np.float64), b.astype(np.float64), stride, pads, dilation, groups
    )
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2])
def test_a_batch_spanning_several_cache_sized_chunks_matches_direct_convolution(tmp_path, groups):
    # 300 samples of 6x9x10 in float64 gather more than the 2 MiB chunk budget: the batch
    # runs in several chunks (row-shifted GEMMs for groups=1, im2col for groups=2)
    w, b = _w(6, 6 // groups, 3, 3), _w(6)
    node = N("Conv", ["x", "w", "b"], ["y"], group=groups, pads=[1, 1, 1, 1])
    path = tmp_path / "conv.onnx"
    onnx.save(_model([node], ("N", 6, 9, 10), {"w": w, "b": b}, 13), path)
    x = RNG.normal(size=(300, 6, 9, 10))
    got = rsim.load(path).run_float(x, dtype=np.float64)["y"]
    want = _direct_conv_float64(x, w.astype(np.float64), b.astype(np.float64), 1, (1, 1, 1, 1), 1, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
