"""The reduction plan of an integer MAC datapath and the saturation counters it produces.

A plan says how a dot product Σ_k a[k]·b[k] is accumulated in hardware:

- the accumulator register has `acc_bits` (two's complement) and applies `acc_overflow` after
  every addition;
- `k_chunk` cuts K into consecutive chunks in ascending k (None = one chunk of all K); each chunk
  starts with acc = 0 and adds its products in ascending k;
- with a `k_chunk`, the chunk results are added in chunk order into a partial sum of `psum_bits`
  (default: `acc_bits`) that starts at 0 and applies `psum_overflow` after every addition; with
  `k_chunk=None` the accumulator is the result and there is no psum step;
- a bias (one per output column) is either `preload`ed (the first chunk's accumulator starts at
  the bias) or added `post` (to the final result, in the psum register, or the accumulator when
  there is no psum step; that addition counts in that register's counter).

Counters count additions whose exact result fell outside the register's range, i.e. saturation
events (or wrap events in `wrap` mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.errors import RsimError
from formats.modes import Overflow, as_overflow

BIAS_MODES = ("preload", "post")


def _check_bits(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 2 <= value <= 64:
        raise RsimError(f"{what}: must be an integer in 2..64, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Register:
    """A two's-complement register of `bits` bits and the overflow rule applied after each add."""

    bits: int
    overflow: Overflow

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def lo(self) -> int:
        """Lowest reachable value: -2^(bits-1), or -hi under symmetric saturation."""
        if self.overflow is Overflow.SATURATE_SYMMETRIC:
            return -self.hi
        return -(1 << (self.bits - 1))

    def fits(self, values: np.ndarray) -> bool:
        return values.size == 0 or (int(values.min()) >= self.lo and int(values.max()) <= self.hi)


@dataclass(frozen=True)
class ReductionPlan:
    """A validated accumulation plan (see the module docstring for the exact semantics)."""

    acc: Register
    k_chunk: int | None
    psum: Register | None
    bias_mode: str

    @classmethod
    def build(
        cls,
        *,
        acc_bits: int,
        acc_overflow: str | Overflow = "saturate",
        k_chunk: int | None = None,
        psum_bits: int | None = None,
        psum_overflow: str | Overflow = "saturate",
        bias_mode: str = "post",
    ) -> ReductionPlan:
        """Validate the accumulator keywords of `gemm`/`conv2d`, naming the bad argument."""
        acc = Register(_check_bits(acc_bits, "acc_bits"), as_overflow(acc_overflow, "acc_overflow"))
        if k_chunk is not None and (
            isinstance(k_chunk, bool) or not isinstance(k_chunk, (int, np.integer)) or k_chunk <= 0
        ):
            raise RsimError(f"k_chunk: must be a positive integer or None, got {k_chunk!r}")
        psum_overflow_mode = as_overflow(psum_overflow, "psum_overflow")
        if psum_bits is not None:
            psum_bits = _check_bits(psum_bits, "psum_bits")
        psum = None
        if k_chunk is not None:
            psum = Register(acc_bits if psum_bits is None else psum_bits, psum_overflow_mode)
        if bias_mode not in BIAS_MODES:
            raise RsimError(f"bias_mode: must be one of {', '.join(BIAS_MODES)}, got {bias_mode!r}")
        return cls(acc, None if k_chunk is None else int(k_chunk), psum, bias_mode)

    @property
    def bias_register(self) -> Register:
        """The register a bias enters: the accumulator when preloaded or without psum step."""
        if self.bias_mode == "post" and self.psum is not None:
            return self.psum
        return self.acc

    @property
    def safe_limit(self) -> int:
        """No event can happen while every partial sum has magnitude <= this."""
        regs = [self.acc] if self.psum is None else [self.acc, self.psum]
        return min(r.hi for r in regs)


@dataclass(frozen=True)
class AccumulatorStats:
    """Overflow-event counters of one GEMM/convolution.

    `acc_events` and `psum_events` have the output's shape and give, per output value, how many
    additions saturated (or wrapped) in that register, so saturation can be located. Totals and
    per-output-channel sums are derived from them. `outputs_at_risk` is how many outputs could
    not be proven event-free by the Σ|a·b| bound and ran through the sequential kernel.
    """

    acc_events: np.ndarray
    psum_events: np.ndarray
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
    def psum_saturations(self) -> int:
        return int(self.psum_events.sum()) if self.outputs_at_risk else 0

    def _per_channel(self, events: np.ndarray) -> np.ndarray:
        if not self.outputs_at_risk:  # every output was proven event-free: nothing to count
            return np.zeros(events.shape[self.channel_axis], np.int64)
        axes = tuple(i for i in range(events.ndim) if i != self.channel_axis)
        return events.sum(axis=axes, dtype=np.int64)

    @property
    def acc_saturations_per_channel(self) -> np.ndarray:
        return self._per_channel(self.acc_events)

    @property
    def psum_saturations_per_channel(self) -> np.ndarray:
        return self._per_channel(self.psum_events)
