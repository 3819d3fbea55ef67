"""The reduction plan of a MAC datapath and the saturation counters it produces.

A plan says how a dot product Σ_k a[k]·b[k] is accumulated in hardware:

- the `accumulator` register (`formats.Register`: integer bits with an overflow rule, or a float
  format) applies its rule after every addition;
- `k_chunk` cuts K into consecutive chunks in ascending k (None = one chunk of all K); each chunk
  starts with the accumulator at 0 and adds its products in ascending k;
- with a `k_chunk`, the chunk results are added in chunk order into the `partial_sum` register
  (default: the accumulator's precision) that starts at 0 and applies its rule after every
  addition; with `k_chunk=None` the accumulator is the result and there is no partial-sum step;
- a bias (one per output column) is either `preload`ed (the first chunk's accumulator starts at
  the bias) or added `post` (to the final result, in the partial-sum register, or the accumulator
  when there is no partial-sum step; that addition counts in that register's counter);
- float datapaths only: each product is exact, or rounded to the `product` format; float
  registers round with `rounding` (integer registers are exact up to their overflow rule).

Counters count additions whose exact result fell outside an integer register's range, i.e.
saturation events (or wrap events in `wrap` mode).

The scheduler builds one plan per MAC layer from the accelerator (`rsim.schedule`), and the
bit-accurate layer hands that object to the kernels: they take a plan, never its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.base import Format
from formats.errors import RsimError
from formats.minifloat import Minifloat
from formats.modes import Rounding, as_rounding
from formats.register import Register

BIAS_MODES = ("preload", "post")


@dataclass(frozen=True)
class ReductionPlan:
    """How a MAC datapath reduces each output (see the module docstring for the exact
    semantics); validated and normalised on construction: without a `k_chunk` there is no
    partial sum, with one the partial sum defaults to the accumulator's precision."""

    accumulator: Register
    k_chunk: int | None = None
    partial_sum: Register | None = None
    bias_mode: str = "post"
    product: Format | None = None
    rounding: Rounding = Rounding.NEAREST_EVEN

    def __post_init__(self) -> None:
        if not isinstance(self.accumulator, Register):
            raise RsimError(f"accumulator: must be a formats.Register, got {self.accumulator!r}")
        k_chunk = self.k_chunk
        if k_chunk is not None and (isinstance(k_chunk, bool)
                                    or not isinstance(k_chunk, (int, np.integer)) or k_chunk <= 0):
            raise RsimError(f"k_chunk: must be a positive integer or None, got {k_chunk!r}")
        if self.partial_sum is not None and not isinstance(self.partial_sum, Register):
            raise RsimError(f"partial_sum: must be a formats.Register or None, "
                            f"got {self.partial_sum!r}")
        partial_sum = None if k_chunk is None else (self.partial_sum or self.accumulator)
        object.__setattr__(self, "k_chunk", None if k_chunk is None else int(k_chunk))
        object.__setattr__(self, "partial_sum", partial_sum)
        if self.bias_mode not in BIAS_MODES:
            raise RsimError(f"bias_mode: must be one of {', '.join(BIAS_MODES)}, "
                            f"got {self.bias_mode!r}")
        object.__setattr__(self, "rounding", as_rounding(self.rounding, "rounding"))
        kinds = {register.is_integer for register in self.registers}
        if len(kinds) > 1:
            raise RsimError("accumulator, partial_sum: both integer (bits) or both float "
                            f"(format), got {self.accumulator} and {partial_sum}")
        if self.product is not None and (self.is_integer
                                         or not isinstance(self.product, Minifloat)):
            raise RsimError(f"product: a format products are rounded to applies to float "
                            f"(minifloat) datapaths, got {self.product} with registers "
                            f"{self.accumulator}")

    @property
    def registers(self) -> tuple[Register, ...]:
        """The accumulator, then the partial sum when there is a partial-sum step."""
        return (self.accumulator,) if self.partial_sum is None else (self.accumulator,
                                                                      self.partial_sum)

    @property
    def is_integer(self) -> bool:
        return self.accumulator.is_integer

    @property
    def bias_register(self) -> Register:
        """The register a bias enters: the accumulator when preloaded or without partial-sum
        step, else the partial sum."""
        if self.bias_mode == "post" and self.partial_sum is not None:
            return self.partial_sum
        return self.accumulator

    @property
    def safe_limit(self) -> int:
        """No event can happen while every partial sum has magnitude <= this (integer plans)."""
        return min(register.hi for register in self.registers)


def integer_plan(plan: object, kernel: str) -> ReductionPlan:
    """`plan` when an integer kernel can run it, else one error naming the kernel."""
    if not isinstance(plan, ReductionPlan):
        raise RsimError(f"{kernel}: plan must be a kernels.ReductionPlan, got {plan!r}")
    if not plan.is_integer:
        raise RsimError(f"{kernel}: the plan's registers are float ({plan.accumulator}); use the "
                        "minifloat kernels")
    return plan


def float_plan(plan: object, kernel: str) -> ReductionPlan:
    """`plan` when a minifloat kernel can run it, else one error naming the kernel."""
    if not isinstance(plan, ReductionPlan):
        raise RsimError(f"{kernel}: plan must be a kernels.ReductionPlan, got {plan!r}")
    if plan.is_integer:
        raise RsimError(f"{kernel}: the plan's registers are integer ({plan.accumulator}); use "
                        "the integer kernels")
    if plan.rounding is Rounding.STOCHASTIC:
        raise RsimError(f"{kernel}: stochastic rounding is not supported in minifloat "
                        "accumulators")
    return plan


@dataclass(frozen=True)
class AccumulatorStats:
    """Overflow-event counters of one GEMM/convolution.

    `acc_events` and `partial_sum_events` have the output's shape and give, per output value, how many
    additions saturated (or wrapped) in that register, so saturation can be located. Totals and
    per-output-channel sums are derived from them. `outputs_at_risk` is how many outputs could
    not be proven event-free by the Σ|a·b| bound and ran through the sequential kernel.
    """

    acc_events: np.ndarray
    partial_sum_events: np.ndarray
    channel_axis: int
    outputs_at_risk: int

    @classmethod
    def event_free(cls, shape: tuple[int, ...], channel_axis: int = 1) -> AccumulatorStats:
        """The stats of a result proven free of overflow events (read-only zero counters)."""
        no_events = np.broadcast_to(np.zeros((), np.int64), shape)
        return cls(no_events, no_events, channel_axis, 0)

    @property
    def acc_saturations(self) -> int:
        return int(self.acc_events.sum()) if self.outputs_at_risk else 0

    @property
    def partial_sum_saturations(self) -> int:
        return int(self.partial_sum_events.sum()) if self.outputs_at_risk else 0

    def _per_channel(self, events: np.ndarray) -> np.ndarray:
        if not self.outputs_at_risk:  # every output was proven event-free: nothing to count
            return np.zeros(events.shape[self.channel_axis], np.int64)
        axes = tuple(i for i in range(events.ndim) if i != self.channel_axis)
        return events.sum(axis=axes, dtype=np.int64)

    @property
    def acc_saturations_per_channel(self) -> np.ndarray:
        return self._per_channel(self.acc_events)

    @property
    def partial_sum_saturations_per_channel(self) -> np.ndarray:
        return self._per_channel(self.partial_sum_events)
