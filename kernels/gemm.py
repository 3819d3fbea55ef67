"""Integer GEMM with a modelled accumulator: exact, and fast where exactness can be proven.

`gemm` is the public entry; `gemm_batched` is the engine shared with the convolutions.

How the engine stays exact and fast:
1. If no partial sum of any output can leave the registers' range (static bound
   K·max|a|·max|b| + max|bias| <= the smallest register's max), no overflow event can happen,
   the plan's order does not matter and every output is the exact Σ a·b (+ bias); when that
   bound is also <= 2^24, one float32 BLAS GEMM gives it with no further pass (`_float32_gemm`;
   `kernels.conv` does the same for convolutions without lowering them to integer im2col).
2. Otherwise a bound of each output's Σ|a·b| decides: first min(Σ|a_m|·max|b_n|, max|a_m|·Σ|b_n|)
   (no GEMM; it isolates hot rows and columns), then, when that leaves many outputs in doubt,
   one extra float32 GEMM on |a|, |b|, lifted by its worst-case rounding error (all
   terms are non-negative), bounds each output's Σ|a·b|; with |bias| added, outputs inside the
   range are exact sums, the others ("at risk") run through the sequential kernel.
3. Exact sums come from BLAS: one float32 GEMM for the rows whose Σ|a·b| stays <= 2^24 (every
   partial sum, in whatever order BLAS adds, is then an exactly representable integer), K-blocks
   in float32/float64 for the others. When a product or a sum is too large even for that,
   every output runs sequentially.
4. The sequential kernel runs each dense row along its columns and hot columns along their
   rows (on the transposed problem), so each pass has long vectors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.errors import RsimError
from kernels.accumulate import sequential_rows
from kernels.plan import AccumulatorStats, ReductionPlan, integer_plan
from kernels.threads import blas_threads_for, threads_for

_MAX_PRODUCT = 1 << 62
_INT64_LIMIT = 1 << 63
FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53
_MIN_FLOAT32_BLOCK = 256
_REFINE_FRACTION = 16  # with > 1/16 of the outputs possibly at risk, refine by the GEMM bound
_REFINE_SAMPLES = 64  # ... if a sample of that many candidates shows
_REFINE_IF_SAFE_SHARE = 0.75  # ... fewer than 75 % of them truly at risk
_FLOAT32_BOUND_MAX_K = 1 << 20  # float32 keeps the Σ|a·b| bound's rounding small up to here
_DENSE_ROW_DIVISOR = 8  # a row with >= N/8 of its outputs at risk runs as a whole row
_SEQUENTIAL_DTYPES = (np.int32, np.int64)  # few Numba specializations: short compiles


def _check_bits(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 2 <= value <= 64:
        raise RsimError(f"{what}: must be an integer in 2..64, got {value!r}")
    return int(value)


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


@njit(cache=True, fastmath=True, nogil=True)
def _prepare_rows(a, T):
    n_g, n_m, n_k = a.shape
    af = np.empty((n_g, n_m, n_k), np.float32)
    sums = np.zeros((n_g, n_m))
    maxes = np.zeros((n_g, n_m))
    for g in range(n_g):
        for m in range(n_m):
            total = T(0)
            largest = T(0)
            for k in range(n_k):
                af[g, m, k] = a[g, m, k]
                v = abs(T(a[g, m, k]))
                total += v
                largest = max(largest, v)
            sums[g, m] = total
            maxes[g, m] = largest
    return af, sums, maxes


def prepare_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One pass over integer a (G, M, K): its float32 copy (for BLAS), Σ_k |a| and max_k |a| per
    row (float64, (G, M)), and max |a| as an int.

    Codes of up to 32 bits are summed in int64 (exact, and it vectorizes); int64 codes in
    float64 (fastmath only reorders that sum; the callers' margin covers any order). Serial on
    purpose: it runs next to BLAS calls whose spinning threads would starve a parallel region.
    """
    narrow = a.dtype.itemsize <= 4
    af, sums, maxes = _prepare_rows(a, np.int64 if narrow else np.float64)
    a_max = int(maxes.max(initial=0.0)) if narrow else max_abs(a)
    return af, sums, maxes, a_max


def _rounding_margin(n_terms: int, unit: float) -> float:
    """A factor that lifts a float sum of n non-negative terms (each a product of two rounded
    inputs) to at least the exact sum: the relative error is below γ_(n+2) = (n+2)u/(1-(n+2)u),
    and 1 + 4(n+4)u exceeds 1/(1 - γ) while (n+4)u <= 1/10."""
    return 1.0 + 4.0 * (n_terms + 4) * unit


def abs_sum_bound(a: np.ndarray, b: np.ndarray, af: np.ndarray) -> np.ndarray:
    """An upper bound of Σ_k |a_mk·b_kn| per output, float64 (G, M, N): the one extra GEMM.

    A float32 BLAS GEMM on |a|, |b| (float64 when K > 2^20) is not exact, but all its terms are
    non-negative, so scaling by `_rounding_margin` makes it a proven bound (the rounding of
    large codes to float32, af = a as float32, included).
    """
    n_k = a.shape[2]
    if n_k <= _FLOAT32_BOUND_MAX_K:
        unit, abs_a, abs_b = 2.0**-24, np.abs(af), np.abs(b.astype(np.float32))
    else:
        unit, abs_a, abs_b = 2.0**-53, np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))
    sums = np.stack([(abs_a[g] @ abs_b[g]).astype(np.float64) for g in range(a.shape[0])])
    return sums * _rounding_margin(n_k, unit)


def outer_bound(a_sum: np.ndarray, a_max: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A cheap upper bound of Σ_k |a_mk·b_kn| per output, float64 (G, M, N), without a GEMM:
    min(Σ_k |a_mk| · max_k |b_kn|, max_k |a_mk| · Σ_k |b_kn|). It singles out hot rows and hot
    columns, which the full GEMM bound would only confirm."""
    bf = np.abs(b.astype(np.float64))
    b_sum, b_max = bf.sum(axis=1), bf.max(axis=1, initial=0.0)
    bound = np.minimum(a_sum[:, :, None] * b_max[:, None, :], a_max[:, :, None] * b_sum[:, None, :])
    return bound * _rounding_margin(bf.shape[1], 2.0**-53)


def _refinement_pays(a, b, candidates, bias_abs, limit) -> bool:
    """Whether the GEMM bound is worth computing: many outputs are candidates, and a sample of
    them (exact Σ|a·b| by dot products) shows a good share to be safe. Only speed depends on
    this answer; every candidate left runs sequentially and stays exact."""
    n_candidates = np.count_nonzero(candidates)
    if n_candidates * _REFINE_FRACTION <= candidates.size:
        return False
    picks = np.flatnonzero(candidates)[:: max(1, n_candidates // _REFINE_SAMPLES)]
    g, m, n = np.unravel_index(picks, candidates.shape)
    sums = np.einsum("ik,ik->i", np.abs(a[g, m].astype(np.float64)), np.abs(b[g, :, n].astype(np.float64)))
    bias_part = np.broadcast_to(bias_abs, candidates.shape)[g, m, n]
    return np.mean(sums + bias_part > limit) < _REFINE_IF_SAFE_SHARE


def _blocked_matmul(a: np.ndarray, b: np.ndarray, max_product: int) -> np.ndarray:
    """Exact Σ_k a·b of 2-D integer a @ b as int64, BLAS on K-blocks.

    Needs max_product < 2^53. Every partial sum inside a block is bounded by
    block·max_product, which the block size keeps exactly representable in the float type;
    float32 (twice as fast) is used when its blocks are not too small.
    """
    n_k = a.shape[1]
    block32 = FLOAT32_EXACT // max(max_product, 1)
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
        total += (af @ bf).astype(np.int64)
    return total


def exact_sums(a: np.ndarray, b: np.ndarray, af: np.ndarray, row_bounds: np.ndarray | None,
               max_product: int) -> np.ndarray:  # fmt: skip
    """Exact Σ_k a·b of integer (G, M, K) @ (G, K, N) as int64 (needs max_product < 2^53);
    af is a as float32.

    row_bounds (G, M) bounds Σ|a·b| over each row's outputs (None: K·max|a|·max|b| <= 2^24).
    Rows within 2^24 take one float32 BLAS GEMM over all of K, exact whatever order BLAS adds
    in (every partial sum is a sum of a subset of the terms); other rows `_blocked_matmul`.
    """
    n_g, n_m, _ = a.shape
    if n_g == 1 and (row_bounds is None or row_bounds.max(initial=0.0) <= FLOAT32_EXACT):
        return (af[0] @ b[0].astype(np.float32)).astype(np.int64)[None]
    out = np.empty((n_g, n_m, b.shape[2]), np.int64)
    for g in range(n_g):
        single = np.ones(n_m, bool) if row_bounds is None else row_bounds[g] <= FLOAT32_EXACT
        if single.all():
            out[g] = (af[g] @ b[g].astype(np.float32)).astype(np.int64)
            continue
        if single.any():
            rows = np.flatnonzero(single)
            out[g][rows] = (af[g][rows] @ b[g].astype(np.float32)).astype(np.int64)
        rows = np.flatnonzero(~single)
        out[g][rows] = _blocked_matmul(a[g][rows], b[g], max_product)
    return out


def _float32_gemm(a, b, b_max, plan, bias):
    """gemm_batched by one float32 BLAS GEMM per group when that is provably exact and
    event-free, else None: K·max|a|·max|b| bounds every partial sum in any order; with max|bias|
    inside the registers no event can happen (the plan's order does not matter), and within
    2^24 every product and partial sum is an integer float32 holds exactly. The counters are
    all zero (read-only views)."""
    bound = a.shape[2] * max_abs(a) * b_max
    bias_max = 0 if bias is None else max_abs(bias)
    if bound > FLOAT32_EXACT or bound + bias_max > plan.safe_limit:
        return None
    with blas_threads_for(a.shape[1] * a.shape[2] * b.shape[2]):
        out = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.int64)
    if bias is not None:
        out += bias[:, None, :]
    no_events = np.broadcast_to(np.zeros((), np.int64), out.shape)
    return out, no_events, no_events, 0


def gemm_batched(
    a: np.ndarray, b: np.ndarray, plan: ReductionPlan, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run `plan` on integer (G, M, K) @ (G, K, N) with bias (G, N) or None.

    Returns out, acc_events, partial_sum_events (each (G, M, N) int64) and the number of outputs
    that went through the sequential kernel. Arguments must already be validated.
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    shape = (n_g, n_m, n_n)
    b_max = max_abs(b)
    fast = _float32_gemm(a, b, b_max, plan, bias)
    if fast is not None:
        return fast
    acc_events = np.zeros(shape, np.int64)
    partial_sum_events = np.zeros(shape, np.int64)
    af, a_sums, a_maxes, a_max = prepare_rows(a)
    max_product = a_max * b_max
    if max_product > _MAX_PRODUCT:
        raise RsimError(
            f"a, b: the largest product |a|·|b| = {a_max}·{b_max} exceeds 2^62; "
            "use narrower codes"
        )
    limit = plan.safe_limit
    # exact int64 sums need every |Σ| < 2^62 and every product exact in float64
    blas_ok = n_k * max_product < _MAX_PRODUCT and max_product < _FLOAT64_EXACT
    if n_k * max_product + (0 if bias is None else max_abs(bias)) <= limit:
        at_risk = None  # no partial sum can leave the registers
        row_bounds = None
        if n_k * max_product > FLOAT32_EXACT:
            row_bounds = a_sums * float(b_max) * _rounding_margin(n_k, 2.0**-53)
    else:
        bias_abs = 0.0 if bias is None else np.abs(bias.astype(np.float64))[:, None, :]
        bound = outer_bound(a_sums, a_maxes, b)
        at_risk = (bound + bias_abs) * (1.0 + 2.0**-50) > limit  # margin: rounding of the add
        if _refinement_pays(a, b, at_risk, bias_abs, limit):
            # many candidates, many of them safe: the GEMM bound tells those apart
            bound = np.minimum(bound, abs_sum_bound(a, b, af))
            at_risk = (bound + bias_abs) * (1.0 + 2.0**-50) > limit
        row_bounds = bound.max(axis=2)
    if not blas_ok:
        at_risk = np.ones(shape, bool)  # no exact BLAS sum: every output runs sequentially
    n_risk = 0 if at_risk is None else int(np.count_nonzero(at_risk))
    if n_risk < n_g * n_m * n_n and blas_ok:
        out = exact_sums(a, b, af, row_bounds, max_product)
        if bias is not None:
            out += bias[:, None, :]
    else:
        out = np.zeros(shape, np.int64)
    if n_risk:
        _run_sequential(a, b, plan, bias, at_risk, a_max, b_max, out, acc_events, partial_sum_events)
    return out, acc_events, partial_sum_events, n_risk


def _run_sequential(a, b, plan, bias, at_risk, a_max, b_max, out, acc_events, partial_sum_events) -> None:
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
    acc, partial_sum = plan.accumulator, plan.partial_sum or plan.accumulator
    bias_arr = np.zeros((n_g, n_n), np.int64) if bias is None else bias.astype(np.int64)
    fits_int32 = max(acc.bits, partial_sum.bits) <= 32 and a_max * b_max < (1 << 31)
    registers = (
        bias is not None and plan.bias_mode == "post",
        bias is not None and plan.bias_mode == "preload",
        n_k if plan.k_chunk is None else plan.k_chunk,
        acc.lo, acc.hi, 64 - acc.bits, acc.overflow.value == "wrap",
        plan.partial_sum is not None, partial_sum.lo, partial_sum.hi, 64 - partial_sum.bits,
        partial_sum.overflow.value == "wrap",
        np.int32 if fits_int32 else np.int64,
    )  # fmt: skip
    if by_row.any():
        _sequential_pass(a, np.ascontiguousarray(b, dtype=dtype), by_row, dtype, bias_arr, False,
                         registers, out, acc_events, partial_sum_events)  # fmt: skip
    if rest.any():
        shape_t = (n_g, n_n, n_m)
        out_t, acc_t, partial_sum_t = (np.zeros(shape_t, np.int64) for _ in range(3))
        _sequential_pass(b.transpose(0, 2, 1), np.ascontiguousarray(a.transpose(0, 2, 1), dtype=dtype),
                         rest.transpose(0, 2, 1), dtype, bias_arr, True, registers, out_t, acc_t,
                         partial_sum_t)  # fmt: skip
        for full, part in ((out, out_t), (acc_events, acc_t), (partial_sum_events, partial_sum_t)):
            full[rest] = part.transpose(0, 2, 1)[rest]


def _sequential_pass(a, b, mask, dtype, bias, bias_by_row, registers, out, acc_events,
                     partial_sum_events) -> None:  # fmt: skip
    """One orientation: the rows of a (G, M, K) that hold outputs in mask (G, M, N).

    A row with at least half of its outputs selected runs all of them (contiguous b, no
    gather): the extra outputs are safe ones, whose sequential result is their exact sum.
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    per_row = mask.reshape(n_g * n_m, n_n)
    counts = per_row.sum(axis=1)
    rows = np.flatnonzero(counts).astype(np.int64)
    selected = per_row[rows]
    selected[counts[rows] * 2 >= n_n] = True
    counts = selected.sum(axis=1)
    col_ptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts, out=col_ptr[1:])
    cols = np.nonzero(selected)[1].astype(np.int64)
    a_rows = np.ascontiguousarray(a.reshape(n_g * n_m, n_k)[rows], dtype=dtype)
    with threads_for(cols.size * n_k):
        sequential_rows(a_rows, b, n_m, rows, col_ptr, cols, bias, bias_by_row, *registers, out,
                        acc_events, partial_sum_events)  # fmt: skip


def check_bias(bias: object, n: int, plan: ReductionPlan, what: str = "bias") -> np.ndarray | None:
    """Validate a per-output-column bias: integer, shape (n,), fitting the register it enters."""
    if bias is None:
        return None
    arr = int_codes(bias, what, ndim=1)
    if arr.shape[0] != n:
        raise RsimError(f"{what}: must have one value per output channel ({n}), got {arr.shape[0]}")
    reg = plan.bias_register
    if not reg.fits(arr):
        where = "accumulator" if reg is plan.accumulator else "partial-sum register"
        raise RsimError(
            f"{what}: values span {int(arr.min())}..{int(arr.max())}, which does not fit the "
            f"{reg.bits}-bit {where} it enters (range {reg.lo}..{reg.hi})"
        )
    return arr.astype(np.int64)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    plan: ReductionPlan,
    *,
    bias: np.ndarray | None = None,
    a_bits: int | None = None,
    b_bits: int | None = None,
) -> tuple[np.ndarray, AccumulatorStats]:
    """out[m, n] = Σ_k a[m, k]·b[k, n] on integer codes, accumulated as the integer `plan` says
    (`kernels.plan`). `a_bits`/`b_bits` optionally declare the codes' signed widths, which are
    then checked. Returns the int64 (M, N) result and its `AccumulatorStats` (channel axis 1).
    """
    plan = integer_plan(plan, "gemm")
    a = int_codes(a, "a", a_bits, ndim=2)
    b = int_codes(b, "b", b_bits, ndim=2)
    if a.shape[1] != b.shape[0]:
        raise RsimError(f"b: shape {b.shape} does not match a {a.shape}: b needs {a.shape[1]} rows")
    if a.shape[1] == 0:
        raise RsimError("a: the reduction dimension K must be at least 1")
    bias_arr = check_bias(bias, b.shape[1], plan)
    out, acc_ev, partial_sum_ev, n_risk = gemm_batched(
        a[None], b[None], plan, None if bias_arr is None else bias_arr[None]
    )
    return out[0], AccumulatorStats(acc_ev[0], partial_sum_ev[0], channel_axis=1,
                                    outputs_at_risk=n_risk)
