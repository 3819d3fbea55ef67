"""Tensors of the bit-accurate path: `QTensor` (fixed-point codes, or minifloat values, with their
format), a layer's `Outcome`, and `quantize` (float values into a format, saturating)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats import FixedPoint, Format
from kernels.elementwise import fixed_values
from kernels.plan import AccumulatorStats


@dataclass(frozen=True)
class QTensor:
    """A simulated tensor: fixed-point codes (value = code * 2^-fl; kept in the narrowest
    integer type that holds the format, e.g. int8) or minifloat grid values (float64)."""

    data: np.ndarray
    fmt: Format

    def values(self) -> np.ndarray:
        """The real values the tensor stands for (float64)."""
        if isinstance(self.fmt, FixedPoint):
            return fixed_values(self.data, self.fmt.fl)
        return self.data

    @property
    def scale(self) -> float | None:
        """The value of code 1 when `data` holds fixed-point codes (values = data·scale), else
        None (`data` holds the values)."""
        return 2.0 ** -self.fmt.fl if isinstance(self.fmt, FixedPoint) else None


@dataclass
class Outcome:
    """One layer's simulated output, with what the trace and the RTL vectors need."""

    out: QTensor
    clipped: np.ndarray | None = None  # outputs saturated on the way into the output format
    acc: np.ndarray | None = None  # accumulator values before requantization (MAC layers)
    stats: AccumulatorStats | None = None


def quantize(x: np.ndarray, fmt: Format, rounding: str,
             rng: np.random.Generator | None) -> tuple[QTensor, np.ndarray]:
    """Float values into `fmt` (saturating), with the mask of values that clipped."""
    if isinstance(fmt, FixedPoint):
        codes, clipped = fmt.encode_clipped(x, rounding=rounding, rng=rng)
        return QTensor(codes, fmt), clipped
    x = np.asarray(x, dtype=np.float64)
    values = fmt.quantize(x, rounding=rounding, overflow="saturate", rng=rng)
    return QTensor(np.asarray(values, dtype=np.float64), fmt), np.abs(x) > fmt.max
