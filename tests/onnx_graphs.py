"""Builders of small ONNX graphs with random weights, for tests that need real model structure.

`resnet_style` has BatchNorm after every conv, stride-2 downsampling with a projection shortcut,
residual Adds, global average pooling and a PyTorch-style flatten (Shape -> Gather -> Unsqueeze ->
Concat -> Reshape, which rsim folds at import). `mobilenet_style` has depthwise convs, ReLU6
(Clip) and HardSwish (or x * HardSigmoid(x) before opset 14), and a squeeze-excite block
(GlobalAveragePool -> FC -> ReLU -> FC -> HardSigmoid -> Mul). Both take an opset so the same
network can be written with each opset's spelling (Clip bounds as attributes or inputs, Unsqueeze
axes as attribute or input), and a symbolic batch "N".
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8  # onnxruntime refuses the newest IR version helper.make_model would stamp


class _GraphWriter:
    """Accumulates nodes and initializers; each method adds one operator and returns its output."""

    def __init__(self, opset: int, seed: int):
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def const(self, kind: str, value: np.ndarray) -> str:
        name = self.name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_node", **attrs))
        return out

    def conv(
        self,
        x: str,
        c_in: int,
        c_out: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> str:
        fan_in = c_in // groups * k * k
        w = self.rng.normal(0, np.sqrt(2 / fan_in), (c_out, c_in // groups, k, k)).astype(
            np.float32
        )
        inputs = [x, self.const("w", w)]
        if bias:
            inputs.append(self.const("b", self.rng.normal(0, 0.1, c_out).astype(np.float32)))
        return self.node(
            "Conv",
            inputs,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=groups,
        )

    def batchnorm(self, x: str, c: int) -> str:
        stats = [
            self.rng.uniform(0.5, 1.5, c),
            self.rng.normal(0, 0.1, c),
            self.rng.normal(0, 0.1, c),
            self.rng.uniform(0.5, 1.5, c),
        ]
        return self.node(
            "BatchNormalization",
            [x] + [self.const("bn", s.astype(np.float32)) for s in stats],
            epsilon=1e-5,
        )

    def relu6(self, x: str) -> str:
        if self.opset < 11:
            return self.node("Clip", [x], min=0.0, max=6.0)
        return self.node(
            "Clip", [x, self.const("lo", np.float32(0)), self.const("hi", np.float32(6))]
        )

    def hard_swish(self, x: str) -> str:
        if self.opset >= 14:
            return self.node("HardSwish", [x])
        return self.node("Mul", [x, self.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.const("axes", np.array(axes, np.int64))])
        return self.node("Unsqueeze", [x], axes=axes)

    def fc(self, x: str, k: int, n: int) -> str:
        w = self.rng.normal(0, np.sqrt(1 / k), (n, k)).astype(np.float32)
        b = self.rng.normal(0, 0.1, n).astype(np.float32)
        return self.node("Gemm", [x, self.const("fc_w", w), self.const("fc_b", b)], transB=1)

    def torch_flatten(self, x: str) -> str:
        """x.view(x.size(0), -1) as PyTorch exports it."""
        shape = self.node("Shape", [x])
        batch = self.node("Gather", [shape, self.const("idx", np.array(0, np.int64))], axis=0)
        target = self.node(
            "Concat",
            [self.unsqueeze(batch, [0]), self.const("rest", np.array([-1], np.int64))],
            axis=0,
        )
        return self.node("Reshape", [x, target])

    def model(self, x: str, out: str, channels: int, size: int, classes: int) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "net",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", channels, size, size])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", classes])],
            initializer=self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=IR_VERSION
        )
        onnx.checker.check_model(model)
        return model


def resnet_style(
    opset: int,
    *,
    size: int = 32,
    widths: tuple[int, ...] = (8, 16, 32),
    classes: int = 10,
    seed: int = 0,
) -> onnx.ModelProto:
    """Stem conv (stride 2) + BN + ReLU + max pool, then per width a residual block (the first of
    each later width downsamples by 2 with a 1x1 projection), global pool, flatten, FC."""
    g = _GraphWriter(opset, seed)
    y = g.node("Relu", [g.batchnorm(g.conv("input", 3, widths[0], 7, stride=2), widths[0])])
    y = g.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = widths[0]
    for c in widths:
        stride = 1 if c == c_in else 2
        h = g.node("Relu", [g.batchnorm(g.conv(y, c_in, c, 3, stride=stride), c)])
        h = g.batchnorm(g.conv(h, c, c, 3), c)
        shortcut = y if stride == 1 else g.batchnorm(g.conv(y, c_in, c, 1, stride=2), c)
        y = g.node("Relu", [g.node("Add", [h, shortcut])])
        c_in = c
    y = g.fc(g.torch_flatten(g.node("GlobalAveragePool", [y])), c_in, classes)
    return g.model("input", y, 3, size, classes)


def mobilenet_style(
    opset: int, *, size: int = 32, classes: int = 10, seed: int = 0
) -> onnx.ModelProto:
    """Stem conv + BN + HardSwish, two inverted-residual blocks (1x1 expand + ReLU6, depthwise 3x3
    + ReLU6, squeeze-excite, 1x1 project; the second with a residual Add), GAP, FC, Softmax."""
    g = _GraphWriter(opset, seed)
    y = g.hard_swish(g.batchnorm(g.conv("input", 3, 16, 3, stride=2), 16))
    c_in = 16
    for c_out, stride in ((24, 2), (24, 1)):
        hidden = c_in * 4
        h = g.relu6(g.batchnorm(g.conv(y, c_in, hidden, 1), hidden))
        h = g.relu6(g.batchnorm(g.conv(h, hidden, hidden, 3, stride=stride, groups=hidden), hidden))
        squeezed = g.node("Flatten", [g.node("GlobalAveragePool", [h])], axis=1)
        gate = g.fc(g.node("Relu", [g.fc(squeezed, hidden, hidden // 4)]), hidden // 4, hidden)
        gate = g.node("HardSigmoid", [gate], alpha=1 / 6, beta=0.5)
        h = g.node("Mul", [h, g.unsqueeze(gate, [2, 3])])
        h = g.batchnorm(g.conv(h, hidden, c_out, 1), c_out)
        y = g.node("Add", [h, y]) if stride == 1 and c_in == c_out else h
        c_in = c_out
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])], axis=1)
    y = g.node("Softmax", [g.fc(y, c_in, classes)], axis=1)
    return g.model("input", y, 3, size, classes)
