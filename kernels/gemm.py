"""Integer GEMM with a modelled accumulator: exact, and fast where exactness can be proven.

`gemm` is the public entry; `gemm_batched` is the engine shared with the convolutions.

How the engine stays exact and fast:
1. If no partial sum of any output can leave the registers' range (static bound
   K·max|a|·max|b| + max|bias| <= the smallest register's max), no overflow event can happen,
   the plan's order does not matter and every output is the exact Σ a·b (+ bias); float32
   BLAS on K-blocks within 2^24 gives it with no further pass (`_event_free_gemm`;
   with the torch integer backend, `kernels.intmm`, int8 codes take one int32 GEMM up to 2^31;
   `kernels.conv` does the same for convolutions without lowering them to integer im2col).
2. Otherwise a cheap bound of each output's Σ|a·b|, min(Σ|a_m|·max|b_n|, max|a_m|·Σ|b_n|)
   (no GEMM; it isolates hot rows and columns), + |bias| decides which outputs are at risk.
   The others are exact sums.
3. Rows holding many outputs at risk are screened block by block (`kernels.screen`), when a
   sample of them shows that it saves sequential work: block sums and block Σ|a·b| from BLAS
   give the exact running sum at every block boundary and prove most outputs event-free; the
   rest continue sequentially from the first block that may leave a register, from its exact
   running sum. (Convolutions do this on float32 patches, `kernels.blockconv`.)
4. Exact sums come from BLAS: one float32 GEMM for the rows whose Σ|a·b| stays <= 2^24 (every
   partial sum, in whatever order BLAS adds, is then an exactly representable integer), K-blocks
   in float32/float64 for the others. When a product or a sum is too large even for that,
   every output at risk runs sequentially from the start.
5. The sequential kernel (`kernels.accumulate`) runs chunk by chunk, a plain vectorized sum for
   each chunk whose Σ|a·b| keeps the accumulator inside its range and the product loop with
   the overflow rule only for the others; dense rows run along their columns and hot columns
   along their rows (on the transposed problem), so each pass has long vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from formats.errors import RsimError
from kernels.accumulate import fold_rows
from kernels.intmm import INT32_EXACT, int8_matmul
from kernels.plan import AccumulatorStats, ReductionPlan, integer_plan
from kernels.screen import (
    NO_CHUNK_LIMITS,
    SCREEN_LIMIT,
    chunk_limits,
    screen_blocks,
    screen_type,
)
from kernels.threads import blas_threads_for, threads_for

_MAX_PRODUCT = 1 << 62
FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53
_MIN_FLOAT32_BLOCK = 256
_DENSE_ROW_DIVISOR = 8  # a row (column) with >= N/8 (M/8) of its outputs at risk is dense
_SCREEN_BLOCK = 96  # products per screening block (rounded up to whole chunks)
_MAX_EVENT_FREE_BLOCKS = 4  # event-free GEMMs split into at most this many exact K-blocks
_SCREEN_SAMPLES = 64  # outputs sampled to decide whether screening pays
_SCREEN_MIN_SAVING = 0.1  # ... it does when it skips over 10 % of K on average
_UNCHUNKED_STEP = 32  # without k_chunk, the sequential kernel tests blocks of this many products
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


def smallest_int_dtype(magnitude: int) -> type:
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
    lowest = T(0)
    for g in range(n_g):
        for m in range(n_m):
            total = T(0)
            largest = T(0)
            for k in range(n_k):
                af[g, m, k] = a[g, m, k]
                v = abs(T(a[g, m, k]))
                total += v
                largest = max(largest, v)
                lowest = min(lowest, T(a[g, m, k]))
            sums[g, m] = total
            maxes[g, m] = largest
    return af, sums, maxes, lowest < 0


def prepare_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """One pass over integer a (G, M, K): its float32 copy (for BLAS), Σ_k |a| and max_k |a| per
    row (float64, (G, M)), max |a| as an int, and whether any code is negative.

    Codes of up to 32 bits are summed in int64 (exact, and it vectorizes); int64 codes in
    float64 (fastmath only reorders that sum; the callers' margin covers any order). Serial on
    purpose: it runs next to BLAS calls whose spinning threads would starve a parallel region.
    """
    narrow = a.dtype.itemsize <= 4
    af, sums, maxes, negative = _prepare_rows(a, np.int64 if narrow else np.float64)
    a_max = int(maxes.max(initial=0.0)) if narrow else max_abs(a)
    return af, sums, maxes, a_max, bool(negative)


def _rounding_margin(n_terms: int, unit: float) -> float:
    """A factor that lifts a float sum of n non-negative terms (each a product of two rounded
    inputs) to at least the exact sum: the relative error is below γ_(n+2) = (n+2)u/(1-(n+2)u),
    and 1 + 4(n+4)u exceeds 1/(1 - γ) while (n+4)u <= 1/10."""
    return 1.0 + 4.0 * (n_terms + 4) * unit


def outer_bound(a_sum: np.ndarray, a_max: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A cheap upper bound of Σ_k |a_mk·b_kn| per output, float64 (G, M, N), without a GEMM:
    min(Σ_k |a_mk| · max_k |b_kn|, max_k |a_mk| · Σ_k |b_kn|). It singles out hot rows and hot
    columns, which the full GEMM bound would only confirm."""
    bf = np.abs(b.astype(np.float64))
    b_sum, b_max = bf.sum(axis=1), bf.max(axis=1, initial=0.0)
    bound = np.minimum(a_sum[:, :, None] * b_max[:, None, :], a_max[:, :, None] * b_sum[:, None, :])
    return bound * _rounding_margin(bf.shape[1], 2.0**-53)


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
               max_product: int, wanted: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Exact Σ_k a·b of integer (G, M, K) @ (G, K, N) as int64 (needs max_product < 2^53);
    af is a as float32. Only the rows in `wanted` (G, M) are computed when given (the others
    are left 0).

    row_bounds (G, M) bounds Σ|a·b| over each row's outputs (None: K·max|a|·max|b| <= 2^24).
    Rows within 2^24 take one float32 BLAS GEMM over all of K, exact whatever order BLAS adds
    in (every partial sum is a sum of a subset of the terms); other rows `_blocked_matmul`.
    With the torch backend, int8 codes within 2^31 take one int32 GEMM.
    """
    n_g, n_m, n_k = a.shape
    out = np.zeros((n_g, n_m, b.shape[2]), np.int64)
    with blas_threads_for(n_m * n_k * b.shape[2]):
        for g in range(n_g):
            rows = np.ones(n_m, bool) if wanted is None else wanted[g]
            if not rows.any():
                continue
            every_row = rows.all()
            a_rows = a[g] if every_row else a[g][rows]
            product = int8_matmul(a_rows, b[g], n_k * max_product)
            if product is not None:
                out[g][rows] = product
                continue
            single = rows if row_bounds is None else rows & (row_bounds[g] <= FLOAT32_EXACT)
            if single.all():
                out[g] = af[g] @ b[g].astype(np.float32)
                continue
            if single.any():
                out[g][single] = af[g][single] @ b[g].astype(np.float32)
            blocked = rows & ~single
            if blocked.any():
                out[g][blocked] = _blocked_matmul(a[g][blocked], b[g], max_product)
    return out


def _event_free_gemm(a, b, b_max, plan, bias):
    """gemm_batched by BLAS when that is provably exact and event-free, else None.

    K·max|a|·max|b| bounds every partial sum in any order; with max|bias| inside the registers
    no event can happen (the plan's order does not matter). Within 2^24 every product and
    partial sum is an integer float32 holds exactly: one float32 GEMM per group; beyond it,
    float32 GEMMs on the few K-blocks that stay within 2^24, added in float64 (exact below
    2^53). Int8 codes within 2^31 take the torch backend's int32 GEMM when it is active. The
    counters are all zero (read-only views)."""
    a_max = max_abs(a)
    bound = a.shape[2] * a_max * b_max
    bias_max = 0 if bias is None else max_abs(bias)
    if bound + bias_max > plan.safe_limit or bound >= _FLOAT64_EXACT:
        return None
    products = [int8_matmul(a[g], b[g], bound) for g in range(a.shape[0])]
    if all(p is not None for p in products):
        out = np.stack(products).astype(np.int64)
    else:
        block = FLOAT32_EXACT // max(a_max * b_max, 1)
        if block == 0 or -(-a.shape[2] // block) > _MAX_EVENT_FREE_BLOCKS:
            return None
        af, bf = a.astype(np.float32), b.astype(np.float32)
        with blas_threads_for(a.shape[1] * min(block, a.shape[2]) * b.shape[2]):
            if block >= a.shape[2]:
                out = np.matmul(af, bf).astype(np.int64)
            else:
                total = np.zeros((a.shape[0], a.shape[1], b.shape[2]))
                for g in range(a.shape[0]):
                    for k0 in range(0, a.shape[2], block):
                        total[g] += af[g][:, k0:k0 + block] @ bf[g][k0:k0 + block]
                out = total.astype(np.int64)
    if bias is not None:
        out += bias[:, None, :]
    no_events = np.broadcast_to(np.zeros((), np.int64), out.shape)
    return out, no_events, no_events, 0


@dataclass
class RegisterArgs:
    """The plan's registers and bias as the Numba kernels take them."""

    plan: ReductionPlan
    bias: np.ndarray  # int64 (G, N), zeros when absent
    has_bias: bool

    @property
    def chunked(self) -> bool:
        return self.plan.partial_sum is not None

    @property
    def chunk(self) -> int:
        """The chunk the kernels step by: k_chunk, or the blocks of the one accumulator."""
        return self.plan.k_chunk or _UNCHUNKED_STEP

    @property
    def bias_post(self) -> bool:
        return self.has_bias and self.plan.bias_mode == "post"

    @property
    def bias_preload(self) -> bool:
        return self.has_bias and self.plan.bias_mode == "preload"

    @property
    def running(self):
        """The register whose successive states are running sums: the partial sum, or the
        accumulator without k_chunk."""
        return self.plan.partial_sum or self.plan.accumulator

    def chunks_need_checks(self, max_product: int) -> bool:
        """Whether a chunk's accumulator (k_chunk plans) could leave its range by the static
        bound k_chunk·max|a·b| (+ the largest preloaded bias)."""
        if not self.chunked:
            return False
        preload = int(np.abs(self.bias).max(initial=0)) if self.bias_preload else 0
        return self.plan.k_chunk * max_product + preload > self.plan.accumulator.hi

    def base(self) -> np.ndarray:
        """(G, N): the running register's value before the first product: the preloaded bias
        (for a partial sum, the value its first chunk would add) or 0."""
        return self.bias if self.bias_preload else np.zeros_like(self.bias)

    def numba_args(self, a_max: int, b_max: int) -> tuple:
        acc, part = self.plan.accumulator, self.running
        chunk_sum = self.chunk * a_max * b_max  # bounds a chunk's plain and absolute sums
        fits_int32 = max(acc.bits, part.bits) <= 32 and chunk_sum < INT32_EXACT
        plain_ok = chunk_sum < _MAX_PRODUCT
        return (self.bias_post, self.bias_preload, self.chunk, self.chunked, plain_ok,
                acc.lo, acc.hi, 64 - acc.bits, acc.overflow.value == "wrap",
                part.lo, part.hi, 64 - part.bits, part.overflow.value == "wrap",
                np.int32 if fits_int32 else np.int64)  # fmt: skip


@dataclass
class _Screened:
    """One group's screened rows: their positions, block length and exact block sums."""

    rows: np.ndarray  # row indices m
    position: np.ndarray  # (M,) index into rows, -1 for rows not screened
    block: int
    sums: np.ndarray  # (blocks, R, N) exact block sums, float
    failures: int  # outputs that must continue sequentially


def gemm_batched(
    a: np.ndarray, b: np.ndarray, plan: ReductionPlan, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Run `plan` on integer (G, M, K) @ (G, K, N) with bias (G, N) or None.

    Returns out, acc_events, partial_sum_events (each (G, M, N) int64) and the number of outputs
    the Σ|a·b| bound could not prove event-free. Arguments must already be validated.
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    shape = (n_g, n_m, n_n)
    b_max = max_abs(b)
    fast = _event_free_gemm(a, b, b_max, plan, bias)
    if fast is not None:
        return fast
    af, a_sums, a_maxes, a_max, negative = prepare_rows(a)
    max_product = a_max * b_max
    if max_product > _MAX_PRODUCT:
        raise RsimError(
            f"a, b: the largest product |a|·|b| = {a_max}·{b_max} exceeds 2^62; "
            "use narrower codes"
        )
    limit = plan.safe_limit
    bias_max = 0 if bias is None else max_abs(bias)
    # exact int64 sums need every |Σ| < 2^62 and every product exact in float64
    blas_ok = n_k * max_product < _MAX_PRODUCT and max_product < _FLOAT64_EXACT
    if blas_ok and n_k * max_product + bias_max <= limit:
        row_bounds = None
        if n_k * max_product > FLOAT32_EXACT:
            row_bounds = a_sums * float(b_max) * _rounding_margin(n_k, 2.0**-53)
        out = exact_sums(a, b, af, row_bounds, max_product)
        if bias is not None:
            out += bias[:, None, :]
        no_events = np.broadcast_to(np.zeros((), np.int64), shape)
        return out, no_events, no_events, 0
    bias_abs = 0.0 if bias is None else np.abs(bias.astype(np.float64))[:, None, :]
    bound = outer_bound(a_sums, a_maxes, b)
    at_risk = (bound + bias_abs) * (1.0 + 2.0**-50) > limit  # margin: rounding of the add
    n_risk = int(np.count_nonzero(at_risk))
    registers = RegisterArgs(plan, np.zeros((n_g, n_n), np.int64) if bias is None
                           else bias.astype(np.int64), bias is not None)  # fmt: skip
    acc_events = np.zeros(shape, np.int64)
    partial_sum_events = np.zeros(shape, np.int64)
    out = np.zeros(shape, np.int64)
    start_block = np.zeros(shape, np.int64)  # where each output's sequential run starts
    screened: dict[int, _Screened] = {}
    if blas_ok:
        dense = at_risk.sum(axis=2) >= max(1, n_n // _DENSE_ROW_DIVISOR)
        block = screen_block_length(registers, n_k, max_product, bias_max)
        if block is None or not _screening_pays(a, b, at_risk & dense[:, :, None], block,
                                                registers):  # fmt: skip
            dense[:] = False
        out = exact_sums(a, b, af, bound.max(axis=2), max_product, wanted=~dense)
        if bias is not None:
            out += bias[:, None, :]
        for g in np.flatnonzero(dense.any(axis=1)):
            screened[g] = _screen_rows(a, af, b, g, np.flatnonzero(dense[g]), block, negative,
                                       registers, out, acc_events, partial_sum_events,
                                       start_block)  # fmt: skip
        sequential = at_risk & ~dense[:, :, None]
        for g, rows in screened.items():
            if not rows.failures:
                continue
            fails = start_block[g] < rows.sums.shape[0]
            if rows.rows.size == n_m:
                sequential[g] = fails
            else:
                sequential[g][rows.rows] = fails[rows.rows]
    else:
        sequential = np.ones(shape, bool)  # no exact BLAS sum: every output runs sequentially
        n_risk = n_g * n_m * n_n
    if sequential.any():
        _run_sequential(a, b, registers, sequential, start_block, screened, a_max, b_max, out,
                        acc_events, partial_sum_events)  # fmt: skip
    return out, acc_events, partial_sum_events, n_risk


def _screening_pays(a, b, candidates, block, registers) -> bool:
    """Whether screening the candidate outputs saves enough sequential work: on a sample of
    them (exact block sums and Σ|a·b| by dot products), the share of K the sequential kernel
    would skip, which must exceed `_SCREEN_MIN_SAVING` (screening costs about two GEMMs, the
    sequential kernel some 30 times a GEMM's time per product). Only speed depends on this."""
    picks = np.flatnonzero(candidates)
    if picks.size == 0:
        return False
    picks = picks[:: max(1, picks.size // _SCREEN_SAMPLES)]
    g, m, n = np.unravel_index(picks, candidates.shape)
    products = a[g, m].astype(np.int64) * b[g, :, n].astype(np.int64)
    n_k = products.shape[1]
    starts = np.arange(0, n_k, block)
    sums = np.add.reduceat(products, starts, axis=1)
    spreads = np.add.reduceat(np.abs(products), starts, axis=1)
    running = registers.running
    q = np.cumsum(np.hstack([registers.base()[g, n][:, None], sums]), axis=1)
    ok = (q[:, :-1] + q[:, 1:] + spreads <= 2 * running.hi) & (
        q[:, :-1] + q[:, 1:] - spreads >= 2 * running.lo)
    if registers.chunked:
        chunk = registers.chunk
        chunk_spreads = np.add.reduceat(np.abs(products), np.arange(0, n_k, chunk), axis=1)
        widest = np.maximum.reduceat(chunk_spreads, starts // chunk, axis=1)
        ok &= widest <= registers.plan.accumulator.hi
    first_failure = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))
    return float(np.mean(first_failure / ok.shape[1])) > _SCREEN_MIN_SAVING


def screen_block_length(registers: RegisterArgs, n_k: int, max_product: int, bias_max: int,
                        unit: int = 1) -> int | None:  # fmt: skip
    """The block length screening uses (whole chunks and multiples of `unit`, about
    `_SCREEN_BLOCK` products, each block's sums exact in float32 or float64), or None when
    screening cannot run (values or registers beyond 2^60, blocks too long to be exact)."""
    plan = registers.plan
    step = math.lcm(plan.k_chunk or 1, unit)
    if (n_k * max_product + bias_max >= SCREEN_LIMIT or step * max_product > _FLOAT64_EXACT
            or max(r.bits for r in plan.registers) > 60):  # fmt: skip
        return None
    limit = FLOAT32_EXACT if step * max_product <= FLOAT32_EXACT else _FLOAT64_EXACT
    steps = max(1, min(-(-_SCREEN_BLOCK // step), limit // max(step * max_product, 1)))
    return min(steps * step, n_k)


def _screen_rows(a, af, b, g, rows, block, negative, registers, out, acc_events,
                 partial_sum_events, start_block) -> _Screened:  # fmt: skip
    """Screen rows `rows` of group g (`kernels.screen`): write the outputs proven event-free
    (and their post-bias events) and each other output's first unsafe block into start_block
    (the block count: none)."""
    n_m = a.shape[1]
    sums, spreads = _block_sums(a[g], af[g], b[g], rows, block, negative)
    plan = registers.plan
    post = registers.running
    events = partial_sum_events if registers.chunked else acc_events
    check = registers.chunks_need_checks(max_abs(a[g]) * max_abs(b[g]))
    row_limits, column_limits = NO_CHUNK_LIMITS
    if check:
        n_blocks = sums.shape[0]
        row_limits = np.empty((rows.size, n_blocks), np.int64)
        column_limits = np.empty((b.shape[2], n_blocks), np.int64)
        with threads_for(a.shape[2] * (rows.size + b.shape[2])):
            chunk_limits(np.ascontiguousarray(a[g][rows]), plan.k_chunk, block, True, False,
                         row_limits)  # fmt: skip
            chunk_limits(b[g], plan.k_chunk, block, False, True, column_limits)
    with threads_for(sums.size):
        failures, _ = screen_blocks(sums, spreads, rows, registers.base()[g], registers.bias[g],
                                    False, registers.bias_post, check, plan.accumulator.hi,
                                    registers.bias_preload, row_limits, column_limits, post.lo,
                                    post.hi, plan.safe_limit, post.lo, post.hi, 64 - post.bits,
                                    post.overflow.value == "wrap",
                                    screen_type(a.shape[2] * max_abs(a[g]) * max_abs(b[g])
                                                + max_abs(registers.bias[g])),
                                    out[g][None], events[g][None],
                                    start_block[g][None])  # fmt: skip
    position = np.full(n_m, -1, np.int64)
    position[rows] = np.arange(rows.size)
    return _Screened(rows, position, block, sums, failures)


def _block_sums(a, af, b, rows, block, negative):
    """Exact block sums and block Σ|a·b| of rows of a (M, K) @ b (K, N), each (blocks, R, N)
    float (exact integers: `_screen_block` keeps block·max|a·b| within the float's range).

    With no negative code in a (activations after ReLU), |a·b| = a·|b|: one GEMM against
    [b | |b|] gives both."""
    n_k, n_n = b.shape
    max_sum = block * max_abs(a) * max_abs(b)
    dtype = np.float32 if max_sum <= FLOAT32_EXACT else np.float64
    every_row = rows.size == a.shape[0]
    a_rows = a if every_row else a[rows]
    if dtype == np.float32:
        a_float = af if every_row else af[rows]
    else:
        a_float = a_rows.astype(np.float64)
    nonnegative = not negative
    abs_a = None if nonnegative else np.abs(a_float)
    n_blocks = -(-n_k // block)
    both = np.empty((n_blocks, rows.size, 2 * n_n), dtype)
    with blas_threads_for(rows.size * block * n_n):
        for i, k0 in enumerate(range(0, n_k, block)):
            k1 = min(k0 + block, n_k)
            b_block = b[k0:k1].astype(dtype)
            exact = int8_matmul(a_rows[:, k0:k1], b[k0:k1], max_sum)
            if exact is not None:  # the integer unit's sums, float BLAS for the bound
                both[i, :, :n_n] = exact
                np.matmul(a_float[:, k0:k1] if nonnegative else abs_a[:, k0:k1], np.abs(b_block),
                          out=both[i, :, n_n:])  # fmt: skip
            elif nonnegative:
                np.matmul(a_float[:, k0:k1], np.concatenate([b_block, np.abs(b_block)], axis=1),
                          out=both[i])  # fmt: skip
            else:
                np.matmul(a_float[:, k0:k1], b_block, out=both[i, :, :n_n])
                np.matmul(abs_a[:, k0:k1], np.abs(b_block), out=both[i, :, n_n:])
    return both[:, :, :n_n], both[:, :, n_n:]


def _run_sequential(a, b, registers, selected, start_block, screened, a_max, b_max, out,
                    acc_events, partial_sum_events) -> None:  # fmt: skip
    """Run the sequential kernel on the selected outputs, each from its start block, oriented
    so each pass has long vectors.

    Outputs run along their rows, except that columns holding many of the outputs outside
    dense rows run along their rows on the transposed problem (b^T @ a^T), so that a hot column
    does not turn into one scalar chain per row. (Scattered outputs stay in the row pass: its b
    is small and stays in cache, where a transposed pass would gather from all of a.)
    """
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    dense_rows = selected.sum(axis=2) >= max(1, n_n // _DENSE_ROW_DIVISOR)
    scattered = selected & ~dense_rows[:, :, None]
    hot_columns = scattered.sum(axis=1) >= max(1, n_m // _DENSE_ROW_DIVISOR)
    rest = scattered & hot_columns[:, None, :]
    by_row = selected & ~rest
    dtype = smallest_int_dtype(max(a_max, b_max))
    args = registers.numba_args(a_max, b_max)
    if by_row.any():
        _sequential_pass(a, np.ascontiguousarray(b, dtype=dtype), by_row, start_block, False,
                         registers, screened, dtype, args, out, acc_events,
                         partial_sum_events)  # fmt: skip
    if rest.any():
        shape_t = (n_g, n_n, n_m)
        out_t, acc_t, partial_sum_t = (np.zeros(shape_t, np.int64) for _ in range(3))
        _sequential_pass(b.transpose(0, 2, 1), np.ascontiguousarray(a.transpose(0, 2, 1),
                                                                    dtype=dtype),
                         rest.transpose(0, 2, 1), start_block.transpose(0, 2, 1), True, registers,
                         screened, dtype, args, out_t, acc_t, partial_sum_t)  # fmt: skip
        for full, part in ((out, out_t), (acc_events, acc_t), (partial_sum_events, partial_sum_t)):
            full[rest] = part.transpose(0, 2, 1)[rest]


def _sequential_pass(a, b, mask, start_block, transposed, registers, screened, dtype, args,
                     out, acc_events, partial_sum_events) -> None:  # fmt: skip
    """One orientation: the outputs in mask (G, M, N) of a (G, M, K) @ b (G, K, N), b of the
    kernel's dtype. Each row starts at the earliest start block of its outputs, from their exact
    running sums there."""
    n_g, n_m, n_k = a.shape
    n_n = b.shape[2]
    per_row = mask.reshape(n_g * n_m, n_n)
    counts = per_row.sum(axis=1)
    rows = np.flatnonzero(counts).astype(np.int64)
    selected = per_row[rows]
    col_ptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(counts[rows], out=col_ptr[1:])
    row_of, cols = np.nonzero(selected)
    cols = cols.astype(np.int64)
    blocks = start_block.reshape(n_g * n_m, n_n)[rows]
    row_block = np.where(selected, blocks, np.iinfo(np.int64).max).min(axis=1)
    g_of = rows[row_of] // n_m
    m_of, n_of = rows[row_of] % n_m, cols
    if transposed:
        m_of, n_of = n_of, m_of
    starts = _start_values(registers, screened, g_of, m_of, n_of, row_block[row_of])
    block_lengths = np.array([_block_length(screened, g) for g in range(n_g)], np.int64)
    k_starts = block_lengths[rows // n_m] * row_block
    a_rows = np.ascontiguousarray(a.reshape(n_g * n_m, n_k)[rows], dtype=dtype)
    with threads_for(cols.size * n_k):
        fold_rows(a_rows, b, n_m, rows, col_ptr, cols, starts, k_starts, registers.bias,
                  transposed, *args, out, acc_events, partial_sum_events)  # fmt: skip


def _block_length(screened: dict[int, _Screened], g: int) -> int:
    return screened[g].block if g in screened else 0


def _start_values(registers, screened, g, m, n, block) -> np.ndarray:
    """The running register's exact value at the start of `block` for outputs (g, m, n): before
    the first block the partial sum's 0 (the kernel preloads the first chunk) or the
    accumulator's base; later, the base plus the exact block sums before it."""
    base = registers.base()[g, n]
    starts = np.zeros(g.size, np.int64) if registers.chunked else base.copy()
    for group in np.unique(g[block > 0]):
        rows = screened[group]
        pick = np.flatnonzero((g == group) & (block > 0))
        sums = rows.sums[:, rows.position[m[pick]], n[pick]].astype(np.int64)
        before = np.arange(sums.shape[0])[:, None] < block[pick][None, :]
        starts[pick] = base[pick] + np.where(before, sums, 0).sum(axis=0)
    return starts


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
