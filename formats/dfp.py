"""Dynamic fixed point: choose a tensor's fractional length from its largest magnitude.

Ristretto's two integer-length rules (il counts the sign bit, fl = bits - il):
  weights:      il = ceil(log2(max|x|)) + 1  (no weight saturates)
  activations:  il = ceil(log2(max|x|))      (one bit less: values in (2^(il-1), max] saturate)
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from formats.errors import RsimError
from formats.fixed import FixedPoint

IntegerLengthRule = Literal["weights", "activations"]
RULES: tuple[str, ...] = ("weights", "activations")


def ceil_log2(value: float) -> int:
    """ceil(log2(value)) exactly, for a finite value > 0."""
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2^exponent, mantissa in [0.5, 1)
    return exponent - 1 if mantissa == 0.5 else exponent


def integer_length(max_abs: float, rule: IntegerLengthRule = "weights") -> int:
    """Ristretto's integer length (sign bit included) for a tensor whose max |x| is max_abs.

    An all-zero tensor (max_abs = 0, where Ristretto's cast is undefined) gets il = 1.
    """
    if rule not in RULES:
        raise RsimError(f"integer-length rule must be one of {', '.join(RULES)}, got {rule!r}")
    max_abs = float(max_abs)
    if not math.isfinite(max_abs) or max_abs < 0:
        raise RsimError(f"max |x| must be a finite number >= 0, got {max_abs!r}")
    if max_abs == 0.0:
        return 1
    return ceil_log2(max_abs) + (1 if rule == "weights" else 0)


def choose_fl(max_abs: float, bits: int, rule: IntegerLengthRule = "weights") -> int:
    """The fractional length Ristretto gives a `bits`-wide tensor with this max |x|."""
    return bits - integer_length(max_abs, rule)


def dfp_format(x, bits: int, rule: IntegerLengthRule = "weights") -> FixedPoint:
    """The signed fixed-point format of `bits` bits whose fl Ristretto would pick for tensor x."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size and np.isnan(arr).any():
        raise RsimError("dfp_format: the tensor contains NaN; max |x| is undefined")
    return FixedPoint(bits, choose_fl(np.max(np.abs(arr)) if arr.size else 0.0, bits, rule))
