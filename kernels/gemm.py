"""Integer GEMM with a modelled accumulator: exact, and fast where exactness can be proven.

`gemm` is the public entry; `gemm_batched` is the engine shared with the convolutions.

How the engine stays exact and fast:
1. If no partial sum of any output can leave the registers' range (static bound
   K·max|a|·max|b| + max|bias| <= the smallest register's max), no overflow event can happen,
   the plan's order does not matter and every output is the exact Σ a·b (+ bias).
2. Otherwise one extra GEMM on |a|, |b| gives each output's bound Σ|a·b| + |bias|; outputs
   inside the range are exact sums, the others ("at risk") run through the sequential kernel.
3. Exact sums come from BLAS on floats split into K-blocks so that every partial sum inside
   a block stays exactly representable (< 2^24 for float32, < 2^53 for float64), whatever
   order BLAS adds in. When even one product is too large for float64, everything at risk
   runs sequentially.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.errors import RsimError
from kernels.accumulate import sequential_rows
from kernels.plan import AccumulatorStats, ReductionPlan, _check_bits
from kernels.threads import threads_for

_MAX_PRODUCT = 1 << 62
_FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53
_MIN_FLOAT32_BLOCK = 256
_BOUND_BLOCK = 32  # K-block of the cheap Σ|a·b| bound
_DENSE_ROW_DIVISOR = 8  # a row with >= N/8 of its outputs selected is handled as a whole row
_SEQUENTIAL_DTYPES = (np.int32, np.int64)  # few Numba specializations: short compiles


def int_codes(x: object, what: str, bits: int | None = None, ndim: int | None = None) -> np.ndarray:
    """Check an integer code array (dimension, dtype, optional signed width) and return it."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" and not (arr.dtype == object and arr.size == 0):
        raise RsimError(f"{what}: must be an array of integer codes, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise RsimError(f"{what}: must be {ndim}-D, got shape {arr.shape}")
    if bits is not None and arr.size:
        bits = _check_bits(bits, f"{what}_bits")
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise RsimError(
                f"{what}: codes span {int(arr.min())}..{int(arr.max())}, outside the declared "
                f"{bits}-bit signed range {lo}..{hi}"
            )
    return arr


def max_abs(x: np.ndarray) -> int:
    """max |x| as a Python int (0 for an empty array), without int8 abs overflow."""
    if x.size == 0:
        return 0
    return max(-int(x.min()), int(x.max()))


def _smallest_int_dtype(magnitude: int) -> type:
    for dt in _SEQUENTIAL_DTYPES:
        if magnitude <= np.iinfo(dt).max:
            return dt
    return np.int64


@njit(cache=True, fastmath=True)
def abs_block_stats(a, block):
    """Per K-block of `block` columns: Σ |a| and max |a| as float64, each (G, M, ceil(K/block)).

    Serial on purpose: it runs right after BLAS calls whose spinning threads would starve a
    parallel region. fastmath only reorders the sums; the caller's margin covers any order.
    """
    n_g, n_m, n_k = a.shape
    n_b = (n_k + block - 1) // block
    sums = np.zeros((n_g, n_m, n_b))
    maxes = np.zeros((n_g, n_m, n_b))
    for g in range(n_g):
        for m in range(n_m):
            for blk in range(n_b):
                total = 0.0
                largest = 0.0
                for k in range(blk * block, min((blk + 1) * block, n_k)):
                    v = abs(np.float64(a[g, m, k]))
                    total += v
                    largest = max(largest, v)
                sums[g, m, blk] = total
                maxes[g, m, blk] = largest
    return sums, maxes


def abs_sum_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A proven upper bound of Σ_k |a_mk·b_kn| per output, float64 (G, M, N), for little work.

    Per K-block: Σ_blk |a| · max_blk |b| and max_blk |a| · Σ_blk |b| both bound the block's
    Σ|a·b|; the smaller total is kept. Two GEMMs with K/block terms; the float64 rounding of
    these non-negative sums is covered by a relative margin of (K + block + 2)·2^-51.
    """
    n_k = a.shape[2]
    a_sum, a_max = abs_block_stats(a, _BOUND_BLOCK)
    b_sum, b_max = abs_block_stats(np.ascontiguousarray(b.transpose(0, 2, 1)), _BOUND_BLOCK)
    margin = 1.0 + (n_k + _BOUND_BLOCK + 2) * 2.0**-51
    return np.stack([
        np.minimum(a_sum[g] @ b_max[g].T, a_max[g] @ b_sum[g].T) for g in range(a.shape[0])
    ]) * margin  # fmt: skip


def _blocked_matmul(a: np.ndarray, b: np.ndarray, max_product: int, absolute: bool) -> np.ndarray:
    """Exact Σ_k a·b (or Σ |a|·|b|) of 2-D integer a @ b as int64, BLAS on K-blocks.

    Needs max_product < 2^53. Every partial sum inside a block is bounded by
    block·max_product, which the block size keeps exactly representable in the float type;
    float32 (twice as fast) is used when its blocks are not too small.
    """
    n_k = a.shape[1]
    block32 = _FLOAT32_EXACT // max(max_product, 1)
    if block32 >= min(n_k, _MIN_FLOAT32_BLOCK):
        dtype, block = np.float32, block32
    else:
        dtype, block = np.float64, _FLOAT64_EXACT // max_product
    n_blocks = -(-n_k // block)
    block = -(-n_k // n_blocks)
    total = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for k0 in range(0, n_k, block):
        af = np.ascontiguousarray(a[:, k0:k0 + block], dtype=dtype)
        bf = np.ascontiguousarray(b[k0:k0 + block], dtype=dtype)
        if absolute:
            af, bf = np.abs(af), np.abs(bf)
        total += (af @ bf).astype(np.int64)
    return total


def row_bound(a: np.ndarray, b_max: int) -> np.ndarray:
    """Σ_k |a_mk| · max|b|, a bound of every Σ_k |a_mk·b_kn| of row m, float64 (G, M, 1)."""
    n_k = a.shape[2]
    sums, _ = abs_block_stats(a, max(n_k, 1))
    return sums * float(b_max) * (1.0 + (n_k + 2) * 2.0**-51)


def exact_sums(
    a: np.ndarray, b: np.ndarray, bound: np.ndarray, max_product: int, need: np.ndarray | None,
    absolute: bool = False,
) -> np.ndarray:
    """Exact Σ_k a·b (or Σ |a|·|b|) of (G, M, K) @ (G, K, N) for the outputs in `need` (None =
    all), as int64; outputs outside the needed rows × columns are left 0.

    `bound` is a proven upper bound of Σ|a·b| per output ((G, M, 1) per row is fine; None means
    K·max|a|·max|b| <= 2^24 already). Where it is <= 2^24, one float32 BLAS
    GEMM over all of K is exact whatever order BLAS adds in (every partial sum is a sum of a
    subset of the terms); otherwise `_blocked_matmul` splits K.
    """
    n_g, n_m, _ = a.shape
    n_n = b.shape[2]
    out = np.zeros((n_g, n_m, n_n), np.int64)
    for g in range(n_g):
        rectangles = [(np.arange(n_m), np.arange(n_n))] if need is None else _cover(need[g])
        for rows, cols in rectangles:
            whole = rows.size == n_m and cols.size == n_n
            a_g = a[g] if rows.size == n_m else a[g][rows]
            b_g = b[g] if cols.size == n_n else b[g][:, cols]
            if bound is None:
                sub_bound = np.zeros(1)
            elif whole or bound.shape[2] == 1:
                sub_bound = bound[g][rows]
            else:
                sub_bound = bound[g][np.ix_(rows, cols)]
            if sub_bound.max() <= _FLOAT32_EXACT:
                af, bf = a_g.astype(np.float32), b_g.astype(np.float32)
                if absolute:
                    af, bf = np.abs(af), np.abs(bf)
                sub = (af @ bf).astype(np.int64)
            else:
                sub = _blocked_matmul(a_g, b_g, max_product, absolute)
            if whole:
                out[g] = sub
            else:
                out[g][np.ix_(rows, cols)] = sub
    return out


def _cover(need: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """At most two row × column rectangles covering the True entries of a 2-D mask: the rows
    holding many of them, and the bounding rectangle of the rest (so an L-shaped mask costs two
    thin GEMMs, not a full one)."""
    dense = need.sum(axis=1) >= max(1, need.shape[1] // _DENSE_ROW_DIVISOR)
    rest = need & ~dense[:, None]
    rectangles = []
    if dense.any():
        rectangles.append((np.flatnonzero(dense), np.flatnonzero(need[dense].any(axis=0))))
    if rest.any():
        rectangles.append((np.flatnonzero(rest.any(axis=1)), np.flatnonzero(rest.any(axis=0))))
    return rectangles


def gemm_batched(
    a: np.ndarray, b: np.ndarray, plan: ReductionPlan, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run `plan` on integer (G, M, K) @ (G, K, N) with bias (G, N) or None.

    Returns out, acc_events, psum_events (each (G, M, N) int64) and the number of outputs
    that went through the sequential kernel. Arguments must already be validated.
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    shape = (n_g, n_m, n_n)
    acc_events = np.zeros(shape, np.int64)
    psum_events = np.zeros(shape, np.int64)
    a_max, b_max = max_abs(a), max_abs(b)
    max_product = a_max * b_max
    if max_product > _MAX_PRODUCT:
        raise RsimError(
            f"a, b: the largest product |a|·|b| = {a_max}·{b_max} exceeds 2^62; "
            "use narrower codes"
        )
    limit = plan.safe_limit
    if bias is None:
        bias_abs, slack = np.zeros((n_g, 1, n_n)), np.full((n_g, 1, n_n), limit, np.int64)
    else:
        bias_abs = np.abs(bias.astype(np.float64))[:, None, :]
        slack = np.where(bias < 0, limit + bias, limit - bias)[:, None, :]  # limit - |bias|
    # exact int64 sums need every |Σ| < 2^62 and every product exact in float64
    blas_ok = n_k * max_product < _MAX_PRODUCT and max_product < _FLOAT64_EXACT
    if n_k * max_product + (0 if bias is None else max_abs(bias)) <= limit:
        at_risk = np.zeros(shape, bool)  # no partial sum can leave the registers
        bound = None if n_k * max_product <= _FLOAT32_EXACT else row_bound(a, b_max)
    else:
        bound = abs_sum_bound(a, b)
        at_risk = (bound + bias_abs) * (1.0 + 2.0**-50) > limit  # margin: rounding of the add
        if at_risk.any() and blas_ok:
            exact_bound = exact_sums(a, b, bound, max_product, at_risk, absolute=True)
            at_risk &= exact_bound > slack
    n_risk = int(np.count_nonzero(at_risk))
    if n_risk < at_risk.size and blas_ok:
        out = exact_sums(a, b, bound, max_product, None if n_risk == 0 else ~at_risk)
        if bias is not None:
            out += bias[:, None, :]
    else:
        out = np.zeros(shape, np.int64)
    if n_risk:
        _run_sequential(a, b, plan, bias, at_risk, a_max, b_max, out, acc_events, psum_events)
    return out, acc_events, psum_events, n_risk


def _run_sequential(a, b, plan, bias, at_risk, a_max, b_max, out, acc_events, psum_events) -> None:
    """Run the sequential kernel on the outputs at risk, oriented so each pass has long vectors.

    Rows holding many outputs at risk run along their columns; the remaining outputs run along
    their columns' rows on the transposed problem (b^T @ a^T), so that a hot column does not
    turn into one scalar chain per row.
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    dense_rows = at_risk.sum(axis=2) >= max(1, n_n // _DENSE_ROW_DIVISOR)
    by_row = at_risk & dense_rows[:, :, None]
    rest = at_risk & ~by_row
    dtype = _smallest_int_dtype(max(a_max, b_max))
    acc, psum = plan.acc, plan.psum if plan.psum is not None else plan.acc
    bias_arr = np.zeros((n_g, n_n), np.int64) if bias is None else bias.astype(np.int64)
    fits_int32 = max(acc.bits, psum.bits) <= 32 and a_max * b_max < (1 << 31)
    registers = (
        bias is not None and plan.bias_mode == "post",
        bias is not None and plan.bias_mode == "preload",
        n_k if plan.k_chunk is None else plan.k_chunk,
        acc.lo, acc.hi, 64 - acc.bits, acc.overflow.value == "wrap",
        plan.psum is not None, psum.lo, psum.hi, 64 - psum.bits, psum.overflow.value == "wrap",
        np.int32 if fits_int32 else np.int64,
    )  # fmt: skip
    if by_row.any():
        _sequential_pass(np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(b, dtype=dtype),
                         by_row, bias_arr, False, registers, out, acc_events, psum_events)  # fmt: skip
    if rest.any():
        shape_t = (n_g, n_n, n_m)
        out_t, acc_t, psum_t = (np.zeros(shape_t, np.int64) for _ in range(3))
        _sequential_pass(np.ascontiguousarray(b.transpose(0, 2, 1), dtype=dtype),
                         np.ascontiguousarray(a.transpose(0, 2, 1), dtype=dtype),
                         rest.transpose(0, 2, 1), bias_arr, True, registers, out_t, acc_t, psum_t)  # fmt: skip
        for full, part in ((out, out_t), (acc_events, acc_t), (psum_events, psum_t)):
            full[rest] = part.transpose(0, 2, 1)[rest]


def _sequential_pass(a, b, mask, bias, bias_by_row, registers, out, acc_events, psum_events) -> None:
    n_g, n_m, n_k = a.shape
    per_row = mask.reshape(n_g * n_m, b.shape[2])
    counts = per_row.sum(axis=1)
    rows = np.flatnonzero(counts).astype(np.int64)
    col_ptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts[rows], out=col_ptr[1:])
    cols = np.nonzero(per_row[rows])[1].astype(np.int64)
    with threads_for(cols.size * n_k):
        sequential_rows(a, b, rows, col_ptr, cols, bias, bias_by_row, *registers, out, acc_events,
                        psum_events)  # fmt: skip


def check_bias(bias: object, n: int, plan: ReductionPlan, what: str = "bias") -> np.ndarray | None:
    """Validate a per-output-column bias: integer, shape (n,), fitting the register it enters."""
    if bias is None:
        return None
    arr = int_codes(bias, what, ndim=1)
    if arr.shape[0] != n:
        raise RsimError(f"{what}: must have one value per output channel ({n}), got {arr.shape[0]}")
    reg = plan.bias_register
    if not reg.fits(arr):
        where = "accumulator" if reg is plan.acc else "partial-sum register"
        raise RsimError(
            f"{what}: values span {int(arr.min())}..{int(arr.max())}, which does not fit the "
            f"{reg.bits}-bit {where} it enters (range {reg.lo}..{reg.hi})"
        )
    return arr.astype(np.int64)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    acc_bits: int,
    acc_overflow: str = "saturate",
    k_chunk: int | None = None,
    psum_bits: int | None = None,
    psum_overflow: str = "saturate",
    bias: np.ndarray | None = None,
    bias_mode: str = "post",
    a_bits: int | None = None,
    b_bits: int | None = None,
) -> tuple[np.ndarray, AccumulatorStats]:
    """out[m, n] = Σ_k a[m, k]·b[k, n] on integer codes, accumulated as the plan says.

    See `kernels.plan` for the exact semantics of the accumulator keywords. `a_bits`/`b_bits`
    optionally declare the codes' signed widths, which are then checked. Returns the int64
    (M, N) result and its `AccumulatorStats` (channel axis 1).
    """
    plan = ReductionPlan.build(
        acc_bits=acc_bits, acc_overflow=acc_overflow, k_chunk=k_chunk, psum_bits=psum_bits,
        psum_overflow=psum_overflow, bias_mode=bias_mode,
    )  # fmt: skip
    a = int_codes(a, "a", a_bits, ndim=2)
    b = int_codes(b, "b", b_bits, ndim=2)
    if a.shape[1] != b.shape[0]:
        raise RsimError(f"b: shape {b.shape} does not match a {a.shape}: b needs {a.shape[1]} rows")
    if a.shape[1] == 0:
        raise RsimError("a: the reduction dimension K must be at least 1")
    bias_arr = check_bias(bias, b.shape[1], plan)
    out, acc_ev, psum_ev, n_risk = gemm_batched(
        a[None], b[None], plan, None if bias_arr is None else bias_arr[None]
    )
    return out[0], AccumulatorStats(acc_ev[0], psum_ev[0], channel_axis=1, outputs_at_risk=n_risk)
