"""Integer steps several op models share: operands brought exactly onto one grid, a constant
rounded onto a grid, an exact sum divided by a count with one rounding into the output format,
and the output of an integer nonlinear kernel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from formats import FixedPoint
from formats.errors import RsimError
from kernels.divide import divide_rounded
from kernels.intnonlinear import IntOutput
from rsim.quant.tensor import Outcome, QTensor


def aligned(tensors: list[QTensor]) -> tuple[list[np.ndarray], int]:
    """The tensors' codes shifted left onto the finest of their grids (exact), as int64, and
    that grid's fractional length."""
    fl = max(t.fmt.fl for t in tensors)
    return [t.data.astype(np.int64) << (fl - t.fmt.fl) for t in tensors], fl


def constant_codes(value: np.ndarray, fmt: FixedPoint, rounding: str, rng) -> np.ndarray:
    """A constant rounded onto `fmt`'s grid and saturated to its codes (int64)."""
    codes, _ = fmt.encode_clipped(np.asarray(value, dtype=np.float64), rounding=rounding, rng=rng)
    return codes.astype(np.int64)


def mean_output(quant, total: np.ndarray, fl: int, count: int, rng) -> Outcome:
    """Exact int64 sums at fractional length `fl`, divided by `count` and rounded once into the
    output format (a finer grid scales the sums up exactly, a coarser one multiplies the
    divisor by the power of two), then saturated."""
    finer = quant.out_fmt.fl - fl
    num = total << max(finer, 0)
    return quant.saturated_codes(divide_rounded(num, count << max(-finer, 0),
                                                rounding=quant.rounding, rng=rng))


def unit_output(quant, compute: Callable[[], IntOutput]) -> Outcome:
    """The outcome of an integer nonlinear kernel (`compute` returns its codes, already in the
    output format, and the mask of those that saturated); its errors name the layer."""
    try:
        result = compute()
    except RsimError as error:
        raise RsimError(f"layer '{quant.layer.name}' ({quant.layer.op} on the integer "
                        f"nonlinear unit): {error}") from None
    fmt = quant.out_fmt
    return Outcome(QTensor(result.codes.astype(fmt.code_dtype), fmt), result.saturated)
