"""Power-of-two weights: a multiplication becomes a shift, and the result stays exact.

A weight is given as a sign code s (−1, 0 or +1; 0 is the zero weight) and an exponent code e,
its value being s·2^e. With every exponent >= exp_min, x·s·2^e = s·(x << (e − exp_min))·2^exp_min,
so the whole datapath is integer in units of 2^exp_min: `pow2_to_int` gives those integer
weights (s << (e − exp_min)) and `gemm`/`conv2d` on them is exactly the shift-and-add datapath,
accumulator plan included. The result's grid is 2^(exp_min − x_frac) for inputs of frac x_frac.
"""

from __future__ import annotations

import numpy as np

from formats.errors import RsimError

MAX_SPAN = 62


def pow2_to_int(sign: np.ndarray, exponent: np.ndarray, *, exp_min: int) -> np.ndarray:
    """Integer weights sign · 2^(exponent − exp_min) (int64, the shapes broadcast)."""
    s, e = np.asarray(sign), np.asarray(exponent)
    if s.dtype.kind not in "iu" or e.dtype.kind not in "iu":
        raise RsimError("sign, exponent: must be integer codes")
    if s.size and not np.isin(s, (-1, 0, 1)).all():
        raise RsimError("sign: codes must be -1, 0 or +1")
    span = e.astype(np.int64) - int(exp_min)
    nonzero = np.broadcast_to(s != 0, np.broadcast_shapes(s.shape, e.shape))
    span_b = np.broadcast_to(span, nonzero.shape)
    if span_b.size and (span_b[nonzero].min(initial=0) < 0 or span_b[nonzero].max(initial=0) > MAX_SPAN):
        raise RsimError(f"exponent: must lie in exp_min..exp_min+{MAX_SPAN} ({exp_min}..{int(exp_min) + MAX_SPAN})")
    return np.where(nonzero, s.astype(np.int64) << np.where(nonzero, span_b, 0), 0)
