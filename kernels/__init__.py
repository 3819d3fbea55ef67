"""Bit-accurate integer and minifloat kernels: GEMM/convolution with a modelled accumulator,
requantization, pooling and element-wise ops on codes."""

from kernels.conv import conv2d, conv_transpose2d
from kernels.gemm import gemm
from kernels.plan import AccumulatorStats, ReductionPlan

__all__ = ["AccumulatorStats", "ReductionPlan", "conv2d", "conv_transpose2d", "gemm"]
