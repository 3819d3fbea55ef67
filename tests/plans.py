"""Reduction plans for kernel tests, written from the keyword spelling the Python-int references
take (`dot_with_plan`), so one dict of keywords drives both the reference and the kernel."""

from __future__ import annotations

from formats import Register, parse
from kernels import ReductionPlan


def plan_of(acc_bits, acc_overflow="saturate", k_chunk=None, partial_sum_bits=None,
            partial_sum_overflow="saturate", bias_mode="post") -> ReductionPlan:
    """An integer plan; the partial sum defaults to the accumulator's width."""
    partial_sum = None
    if k_chunk is not None:
        partial_sum = Register.integer(partial_sum_bits or acc_bits, partial_sum_overflow)
    return ReductionPlan(Register.integer(acc_bits, acc_overflow), k_chunk, partial_sum, bias_mode)


def float_plan_of(acc_format, product_format=None, k_chunk=None, partial_sum_format=None,
                  bias_mode="post", rounding="nearest_even") -> ReductionPlan:
    """A minifloat plan: registers of the given formats (spec strings or formats)."""
    def register(fmt):
        return None if fmt is None else Register.floating(parse(str(fmt)), rounding)

    return ReductionPlan(register(acc_format), k_chunk, register(partial_sum_format), bias_mode,
                         None if product_format is None else parse(str(product_format)), rounding)
