"""The reduction plan a layer's schedule hands to the bit-accurate kernels.

In WS and IS the reduction dimension K lies along the array rows, so it is cut into chunks of
R rows: each chunk is summed in its column's accumulator, and the chunk results are added into
the partial-sum buffer at the psum precision, in fold (ascending k) order. In OS each PE
accumulates the whole K in order, so there is one chunk and no psum step. With a saturating
accumulator the two orders can give different results; that is what this plan makes explicit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from formats.errors import RsimError
from hwconfigs.schema import Datapath, Register


@dataclass(frozen=True)
class AccumulationPlan:
    """How the kernels accumulate one layer: chunking of K, registers and the bias entry."""

    k_chunk: int | None  # None: the whole K in one accumulator (OS)
    accumulator: Register
    partial_sum: Register | None  # None when k_chunk is None
    bias_mode: str

    @classmethod
    def for_array(cls, dataflow: str, rows: int, datapath: Datapath) -> AccumulationPlan:
        """The plan of a dataflow on an array with `rows` rows and the given datapath."""
        if dataflow == "os":
            return cls(None, datapath.accumulator, None, datapath.bias_mode)
        return cls(rows, datapath.accumulator, datapath.psum, datapath.bias_mode)

    @property
    def bias_register(self) -> Register:
        """The register a bias is added in: the accumulator (preload, or no partial sums),
        else the partial sum."""
        if self.bias_mode == "post" and self.partial_sum is not None:
            return self.partial_sum
        return self.accumulator

    @property
    def is_integer(self) -> bool:
        registers = [self.accumulator] + ([self.partial_sum] if self.partial_sum else [])
        return all(register.bits is not None for register in registers)

    def gemm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `kernels.gemm` / `kernels.conv2d` that realise this plan."""
        if not self.is_integer:
            raise RsimError("the accumulation plan uses a floating-point register; the integer "
                            "kernels' acc_bits/psum_bits do not apply")
        kwargs: dict[str, Any] = {
            "acc_bits": self.accumulator.bits,
            "acc_overflow": self.accumulator.overflow.value,
            "k_chunk": self.k_chunk,
            "bias_mode": self.bias_mode,
        }
        if self.partial_sum is not None:
            kwargs["psum_bits"] = self.partial_sum.bits
            kwargs["psum_overflow"] = self.partial_sum.overflow.value
        return kwargs
