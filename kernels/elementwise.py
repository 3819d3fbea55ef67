"""Element-wise operations on integer codes: aligned addition, ReLU-family clipping, and the
real values of fixed-point codes."""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.errors import RsimError
from formats.modes import Overflow, Rounding
from kernels.requant import MAX_SHIFT, requantize_shift


def _codes(x: object, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"{what}: must be integer codes, got dtype {arr.dtype}")
    return arr.astype(np.int64)


@njit(cache=True, nogil=True)
def _scale(codes, factor, out):
    for i in range(codes.size):
        out[i] = codes[i] * factor


def fixed_values(codes: np.ndarray, fl: int) -> np.ndarray:
    """float64 values codes·2^-fl of integer codes (fl in −1022..1022), in one compiled pass
    (numpy casts and multiplies in two). Exact while |codes| < 2^53 and the result is normal."""
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"codes: must be integer codes, got dtype {arr.dtype}")
    if not -1022 <= fl <= 1022:
        raise RsimError(f"fl: must lie in -1022..1022, got {fl}")
    out = np.empty(arr.shape, np.float64)
    _scale(np.ascontiguousarray(arr, dtype=np.int64).reshape(-1), 2.0**-fl, out.reshape(-1))
    return out


def add_aligned(
    a: np.ndarray,
    a_frac: int,
    b: np.ndarray,
    b_frac: int,
    *,
    out_frac: int,
    out_bits: int,
    signed: bool = True,
    rounding: str | Rounding = "nearest_even",
    overflow: str | Overflow = "saturate",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Fixed-point a·2^-a_frac + b·2^-b_frac as codes of (out_bits, out_frac).

    Both operands are shifted left to the finer of the two grids (exact), added exactly in int64,
    then requantized once to the output grid (`requantize_shift`: rounding, then overflow).
    a and b broadcast against each other.
    """
    av, bv = _codes(a, "a"), _codes(b, "b")
    frac = max(int(a_frac), int(b_frac))
    shift_a, shift_b = frac - int(a_frac), frac - int(b_frac)
    if max(shift_a, shift_b) > MAX_SHIFT:
        raise RsimError(f"a_frac, b_frac: alignment shift {max(shift_a, shift_b)} exceeds {MAX_SHIFT}")
    for arr, sh, what in ((av, shift_a, "a"), (bv, shift_b, "b")):
        if arr.size and max(abs(int(arr.min())), abs(int(arr.max()))) << sh >= 1 << 62:
            raise RsimError(f"{what}: aligned codes exceed 62 bits")
    total = (av << shift_a) + (bv << shift_b)
    return requantize_shift(total, frac - int(out_frac), out_bits=out_bits, signed=signed,
                            rounding=rounding, overflow=overflow, rng=rng)  # fmt: skip


def clip(x: np.ndarray, lo: int | np.ndarray, hi: int | np.ndarray) -> np.ndarray:
    """Codes clamped to [lo, hi] (ints or arrays broadcasting to x); int64 result."""
    codes = _codes(x, "x")
    lo_arr, hi_arr = _codes(lo, "lo"), _codes(hi, "hi")
    if np.any(lo_arr > hi_arr):
        raise RsimError("lo, hi: lo must not exceed hi")
    return np.minimum(np.maximum(codes, lo_arr), hi_arr)


def relu(x: np.ndarray, zero_point: int | np.ndarray = 0) -> np.ndarray:
    """max(x, zero_point): ReLU on affine codes (the code of 0.0 is the zero point)."""
    return np.maximum(_codes(x, "x"), _codes(zero_point, "zero_point"))


def relu6(x: np.ndarray, six: int | np.ndarray, zero_point: int | np.ndarray = 0) -> np.ndarray:
    """clip(x, zero_point, six): ReLU6 on codes, `six` being the code of 6.0 in x's format."""
    return clip(x, zero_point, six)
