"""ResNet-18-like and MobileNetV2-like ONNX graphs with random weights (fixed seed), written with
`onnx.helper` through `onnx_graphs._GraphWriter`: the standard layer shapes of the two ImageNet
networks, for the float-path benchmark (benchmarks/bench_models.py) and, scaled down by `size`
and `width`, for tests comparing rsim's float path with onnxruntime.

Layer shapes (He et al. 2016, table 1; Sandler et al. 2018, table 2): ResNet-18 is a 7x7/2 stem
conv + BN + ReLU + 3x3/2 max pool, four stages of two basic blocks (3x3 conv + BN + ReLU, 3x3
conv + BN, residual Add, ReLU; a 1x1/2 conv + BN projects the shortcut where a stage halves the
size), global average pool, FC. MobileNetV2 is a 3x3/2 stem conv + BN + ReLU6, inverted residual
blocks (1x1 expand + BN + ReLU6, depthwise 3x3 + BN + ReLU6, 1x1 project + BN, residual Add when
shape is kept), a 1x1 conv to 1280 channels + BN + ReLU6, global average pool, FC. ReLU6 is
Clip 0..6.
"""

from __future__ import annotations

import onnx

from tests.onnx_graphs import _GraphWriter

OPSET = 13
RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of first block)
# (expansion t, output channels c, blocks n, stride of the first block s), as in the paper
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)  # fmt: skip


def _scaled(channels: int, width: float) -> int:
    """channels * width rounded to a multiple of 8 (at least 8), as MobileNet width multipliers
    round, and never more than 10 % below the exact product."""
    scaled = max(8, int(channels * width + 4) // 8 * 8)
    return scaled + 8 if scaled < 0.9 * channels * width else scaled


def resnet18(*, size: int = 224, width: float = 1.0, classes: int = 1000,
             seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 with BatchNorm (not folded), input (N, 3, size, size), `width` scaling every
    stage's channels."""
    g = _GraphWriter(OPSET, seed)
    stem = _scaled(64, width)
    y = g.node("Relu", [g.batchnorm(g.conv("input", 3, stem, 7, stride=2), stem)])
    y = g.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = stem
    for channels, first_stride in RESNET18_STAGES:
        c = _scaled(channels, width)
        for stride in (first_stride, 1):
            h = g.node("Relu", [g.batchnorm(g.conv(y, c_in, c, 3, stride=stride), c)])
            h = g.batchnorm(g.conv(h, c, c, 3), c)
            shortcut = y
            if stride != 1 or c_in != c:
                shortcut = g.batchnorm(g.conv(y, c_in, c, 1, stride=stride), c)
            y = g.node("Relu", [g.node("Add", [h, shortcut])])
            c_in = c
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])], axis=1)
    return g.model("input", g.fc(y, c_in, classes), 3, size, classes)


def mobilenet_v2(*, size: int = 224, width: float = 1.0, classes: int = 1000,
                 seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 with BatchNorm (not folded) and ReLU6 as Clip(0, 6), input (N, 3, size, size),
    `width` the paper's width multiplier (the last conv keeps 1280 channels below 1.0)."""
    g = _GraphWriter(OPSET, seed)
    c_in = _scaled(32, width)
    y = g.relu6(g.batchnorm(g.conv("input", 3, c_in, 3, stride=2), c_in))
    for expansion, channels, blocks, first_stride in MOBILENET_V2_BLOCKS:
        c_out = _scaled(channels, width)
        for stride in (first_stride,) + (1,) * (blocks - 1):
            hidden = c_in * expansion
            h = y
            if expansion != 1:
                h = g.relu6(g.batchnorm(g.conv(h, c_in, hidden, 1), hidden))
            h = g.relu6(g.batchnorm(g.conv(h, hidden, hidden, 3, stride=stride, groups=hidden),
                                    hidden))  # fmt: skip
            h = g.batchnorm(g.conv(h, hidden, c_out, 1), c_out)
            y = g.node("Add", [h, y]) if stride == 1 and c_in == c_out else h
            c_in = c_out
    last = max(1280, _scaled(1280, width))
    y = g.relu6(g.batchnorm(g.conv(y, c_in, last, 1), last))
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])], axis=1)
    return g.model("input", g.fc(y, last, classes), 3, size, classes)
