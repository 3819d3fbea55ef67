"""`Register`: an accumulation register, the one description the accelerator config, the scheduler's
reduction plan and the kernels share.

An integer register holds `bits` of two's complement and applies `overflow` after every addition;
a float register holds values of a minifloat `format` and rounds to it after every addition, with
its own `rounding` (nearest even, as float adders do, unless the config says otherwise).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from formats.field import FormatField
from formats.minifloat import Minifloat
from formats.modes import Overflow, Rounding


class Register(BaseModel):
    """An accumulation register: `bits` of two's complement with an overflow rule applied after
    every addition, or a floating-point `format` rounded after every addition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: int | None = Field(None, ge=2, le=64, description="integer register width")
    overflow: Overflow = Field(Overflow.SATURATE, description="integer overflow rule")
    format: FormatField | None = Field(None, description="float register format spec")
    rounding: Rounding | None = Field(None, description="rounding of a float register after "
                                      "every addition; none = nearest_even (integer registers "
                                      "are exact)")
    order: Literal["sequential", "blas"] = Field(
        "sequential", description="sequential: one addition at a time in K order, as a "
        "hardware register; blas: an fp32 register summed in the BLAS library's own order, as "
        "Caffe's float GEMM (Ristretto) computes, operands held in float32")

    @model_validator(mode="after")
    def _bits_or_format(self) -> Register:
        if (self.bits is None) == (self.format is None):
            raise ValueError("give exactly one of bits (integer register) or format (float)")
        if self.format is not None and not isinstance(self.format, Minifloat):
            raise ValueError(f"a float register needs a minifloat format, got {self.format}")
        if self.bits is not None and self.rounding is not None:
            raise ValueError("rounding applies to float registers; an integer register is exact "
                             "up to its overflow rule")
        if self.order == "blas" and str(self.format) != "fp32":
            raise ValueError("order: blas models float32 BLAS (Caffe's GEMM); it needs "
                             "format: fp32")
        return self

    @classmethod
    def integer(cls, bits: int, overflow: str | Overflow = Overflow.SATURATE) -> Register:
        return cls(bits=bits, overflow=overflow)

    @classmethod
    def floating(cls, fmt: Any, rounding: str | Rounding | None = None) -> Register:
        return cls(format=fmt, rounding=rounding)

    @property
    def float_rounding(self) -> Rounding:
        """The rounding a float register applies after every addition."""
        return self.rounding or Rounding.NEAREST_EVEN

    @property
    def is_integer(self) -> bool:
        return self.bits is not None

    @property
    def hi(self) -> int:
        """Largest value of an integer register."""
        return (1 << (self.bits - 1)) - 1

    @property
    def lo(self) -> int:
        """Lowest reachable value of an integer register: -2^(bits-1), or -hi under symmetric
        saturation."""
        if self.overflow is Overflow.SATURATE_SYMMETRIC:
            return -self.hi
        return -(1 << (self.bits - 1))

    def fits(self, values: np.ndarray) -> bool:
        """Whether every integer value lies in the register's range."""
        return values.size == 0 or (int(values.min()) >= self.lo and int(values.max()) <= self.hi)

    def __str__(self) -> str:
        if self.bits is not None:
            return f"int{self.bits}/{self.overflow.value}"
        return str(self.format)
