"""rsim's canonical operators, each declared once (`OpSpec`, see `rsim.ops.registry`): float
forward, shape rule, GEMM lowering, format rule and bit-accurate models, one module per concept.

`OPS` maps each canonical op name to its `OpSpec`. The names are the only ones a `Layer.op` can
carry:

conv, conv_transpose, gemm, matmul, relu, clip, leaky_relu, sigmoid, tanh, hard_sigmoid,
hard_swish, cast, maxpool, avgpool, global_avgpool, batchnorm, lrn, softmax, add, sub, mul, div,
identity, concat, flatten, reshape, transpose, squeeze, unsqueeze, pad.
"""

from rsim.ops import activation, cast, conv, elementwise, layout, matmul, normalization, pooling
from rsim.ops.registry import OPS, OpSpec

OP_NAMES: tuple[str, ...] = tuple(OPS)

__all__ = [
    "OPS",
    "OP_NAMES",
    "OpSpec",
    "activation",
    "cast",
    "conv",
    "elementwise",
    "layout",
    "matmul",
    "normalization",
    "pooling",
]
