"""Element-wise float functions numpy lacks, compiled: the error function (ONNX Erf, exact GELU).

`erf` applies C's erf (numba's `math.erf`) to every element in the input's float dtype's
arithmetic: float64 elements are computed in float64, float32 elements in float64 and rounded
once to float32 (so each is the correctly rounded erf whenever the float64 one is)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from formats.errors import RsimError


@njit(cache=True)
def _erf(flat, out):
    for i in range(flat.size):
        out[i] = math.erf(flat[i])


def erf(x: np.ndarray) -> np.ndarray:
    """erf of every element of a float32 or float64 array, in that dtype."""
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        raise RsimError(f"erf: expects float32 or float64 values, got dtype {arr.dtype}")
    wide = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    out = np.empty(wide.shape, np.float64)
    _erf(wide, out)
    return out.reshape(arr.shape).astype(arr.dtype, copy=False)
