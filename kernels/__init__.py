"""Bit-accurate integer and minifloat kernels: GEMM/convolution with a modelled accumulator,
requantization, pooling, element-wise ops on codes, and integer-only softmax, layernorm and GELU."""

from kernels.conv import conv2d, conv2d_changed, conv_transpose2d
from kernels.elementwise import add_aligned, clip, fixed_values, relu, relu6
from kernels.gemm import gemm
from kernels.intmm import int_backend, set_int_backend
from kernels.intnonlinear import IntOutput, int_exp, int_gelu, int_layernorm, int_softmax, int_sqrt
from kernels.minifloat import (
                             minifloat_conv2d,
                             minifloat_conv_transpose2d,
                             minifloat_gemm,
)
from kernels.plan import AccumulatorStats, ReductionPlan
from kernels.pool import avg_pool2d, max_pool2d
from kernels.pow2 import pow2_to_int
from kernels.requant import (
                             onnx_output_scale,
                             quantize_multiplier,
                             requantize_multiplier,
                             requantize_scale,
                             requantize_shift,
                             requantize_to_range,
)

__all__ = [
    "AccumulatorStats",
    "IntOutput",
    "ReductionPlan",
    "add_aligned",
    "avg_pool2d",
    "clip",
    "conv2d",
    "conv2d_changed",
    "conv_transpose2d",
    "fixed_values",
    "gemm",
    "int_backend",
    "int_exp",
    "int_gelu",
    "int_layernorm",
    "int_softmax",
    "int_sqrt",
    "max_pool2d",
    "minifloat_conv2d",
    "minifloat_conv_transpose2d",
    "minifloat_gemm",
    "onnx_output_scale",
    "pow2_to_int",
    "quantize_multiplier",
    "relu",
    "relu6",
    "requantize_multiplier",
    "requantize_scale",
    "requantize_shift",
    "requantize_to_range",
    "set_int_backend",
]
