"""rsim's canonical operators, each declared once (`OpSpec`, see `rsim.ops.registry`): float
forward, shape rule, GEMM lowering, format rule and bit-accurate models, one module per concept.

`OPS` maps each canonical op name to its `OpSpec`. The names are the only ones a `Layer.op` can
carry:

conv, conv_transpose, gemm, matmul, einsum, relu, clip, leaky_relu, sigmoid, tanh, hard_sigmoid,
hard_swish, cast, erf, gelu, exp, log, sqrt, reciprocal, neg, abs, sign, floor, ceil, round,
softplus, softsign, mish, elu, selu, celu, thresholded_relu, prelu, maxpool, avgpool,
global_avgpool, global_maxpool, batchnorm, lrn, softmax, log_softmax, layernorm, layernorm_stat,
rmsnorm, groupnorm, attention, add, sub, mul, div, pow, max, min, sum, mean, where, equal,
reduce_sum, reduce_mean, reduce_max, argmax, topk, gather, slice, expand, tile, resize,
batch_constant, shape, identity, concat, flatten, reshape, transpose, squeeze, unsqueeze, pad.
"""

from rsim.ops import (
    activation,
    attention,
    cast,
    constant,
    conv,
    elementwise,
    gather,
    layout,
    matmul,
    nonlinear,
    normalization,
    pooling,
    reduce,
    resize,
    select,
)
from rsim.ops.registry import OPS, OpSpec

OP_NAMES: tuple[str, ...] = tuple(OPS)

__all__ = [
    "OPS",
    "OP_NAMES",
    "OpSpec",
    "activation",
    "attention",
    "cast",
    "constant",
    "conv",
    "elementwise",
    "gather",
    "layout",
    "matmul",
    "nonlinear",
    "normalization",
    "pooling",
    "reduce",
    "resize",
    "select",
]
