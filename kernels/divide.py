"""Exact integer numerators divided by a positive integer and rounded once: the mean of a
fixed-point sum (ReduceMean, Mean of n tensors) written into an output grid.

`divide_rounded(num, den)` is num / den rounded to an integer in any `formats.modes.Rounding`
(`kernels.pool.divide_round` per element: the rule average pooling uses); stochastic rounding
is floor(num/den + u) with u = rng.random() per element, in element order."""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.errors import RsimError
from formats.modes import Rounding, as_rounding
from kernels.pool import divide_round


@njit(cache=True)
def _divide(num, den, rounding, u, out):
    stochastic = u.size == num.size
    for i in range(num.size):
        out[i] = divide_round(num[i], den, rounding, u[i] if stochastic else 0.0)


def divide_rounded(num: np.ndarray, den: int, *, rounding: str | Rounding = "nearest_even",
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """int64 num / den (0 < den < 2^62) rounded once as `rounding` says; int64, num's shape."""
    arr = np.asarray(num)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"num: must be integer codes, got dtype {arr.dtype}")
    if isinstance(den, bool) or not isinstance(den, (int, np.integer)) or not 0 < den < 1 << 62:
        raise RsimError(f"den: must be an integer in 1 .. 2^62 - 1, got {den!r}")
    mode = as_rounding(rounding)
    flat = np.ascontiguousarray(arr, dtype=np.int64).reshape(-1)
    u = np.zeros(0)
    if mode is Rounding.STOCHASTIC:
        if not isinstance(rng, np.random.Generator):
            raise RsimError("rng: rounding=stochastic needs a numpy.random.Generator")
        u = rng.random(flat.size)
    out = np.empty(flat.shape, np.int64)
    _divide(flat, np.int64(den), mode.code, u, out)
    return out.reshape(arr.shape)
