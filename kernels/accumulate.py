"""Sequential accumulator kernels: the reduction plan executed chunk by chunk, from any chunk on.

These run the outputs that no bound proves event-free. They follow `plan.ReductionPlan`
exactly: chunks of K in ascending k, the accumulator's overflow rule after every product,
chunk results added in order into the partial_sum register, and the bias preloaded or added
last. Each output may start at a later chunk from a known register state (the exact running sum
up to there, which `kernels.screen` proves event-free). Arithmetic is done on int32 or int64 with
overflow-free comparisons, so registers up to 64 bits and products up to 2^62 are exact.

A chunk is first summed plainly (with Σ|a·b| beside it; both operands contiguous in k, so the
sums vectorize): when the accumulator's start value ± that Σ|a·b| stays inside the register, no
addition of the chunk can leave it and the plain sum is the chunk's exact result; only the
other chunks run the product loop with the overflow rule after every addition. Without a
partial-sum step (k_chunk None) the same test runs on blocks of K of the one accumulator.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def register_add(acc, p, lo, hi, shift, wrap, T):
    """acc + p in a register [lo, hi] of type T; returns (new value, event 0/1).

    acc must lie in [lo, hi]; shift = 64 - register bits. The comparisons cannot overflow T
    as long as |p| < 2^(bits of T - 2) (int64) or |p| < 2^31 (int32, registers <= 32 bits);
    the raw sum is formed modulo 2^64 so it is defined even when it leaves T.
    """
    over = acc > T(hi - T(max(p, T(0))))
    under = acc < T(lo - T(min(p, T(0))))
    raw = T(np.uint64(acc) + np.uint64(p))
    if wrap:
        value = T((np.int64(raw) << shift) >> shift)
    else:
        value = hi if over else (lo if under else raw)
    return value, T(over | under)


@njit(cache=True, inline="always")
def stays_inside(start, spread, lo, hi):
    """Whether every value start ± (up to spread) lies in [lo, hi]; start in [lo, hi], spread
    >= 0 (no intermediate overflows: hi - max(start, 0) and lo - min(start, 0) stay in range)."""
    return spread <= hi - max(start, 0) and -spread >= lo - min(start, 0)


@njit(cache=True)
def fold_row(a_row, bt, brow, g, m, col, start, k_start, bias_of, bias_post, bias_preload, chunk,
             chunked, plain_ok, acc_lo, acc_hi, acc_shift, acc_wrap, partial_sum_lo,
             partial_sum_hi, partial_sum_shift, partial_sum_wrap, out, acc_events,
             partial_sum_events):  # fmt: skip
    """The plan for the outputs (g, m, col[j]) of one row (a values a_row (K,)), whose b values
    are the rows bt[brow[j]] (K,), from k_start (a chunk boundary) on, each starting from
    start[j]: the partial sum (chunked) or the accumulator (k_chunk None, preload bias
    included). bias_of[j] is each output's bias.

    chunk is k_chunk, or the block length the plain-sum test uses without chunking. plain_ok
    says whether a chunk's plain and absolute sums fit the type of acc_lo (int32 or int64).
    Both rows are contiguous in k, so each chunk's sums vectorize.
    """
    T = type(acc_lo)
    n_k = a_row.shape[0]
    for j in range(col.shape[0]):
        b_row = bt[brow[j]]
        running = T(start[j])
        ev_a = 0
        ev_p = 0
        for k0 in range(k_start, n_k, chunk):
            k1 = min(k0 + chunk, n_k)
            if chunked:
                acc = bias_of[j] if (bias_preload and k0 == 0) else T(0)
            else:
                acc = running
            plain = T(0)
            spread = T(0)
            if plain_ok:
                for k in range(k0, k1):
                    product = T(a_row[k]) * T(b_row[k])
                    plain += product
                    spread += abs(product)
            if plain_ok and stays_inside(acc, spread, acc_lo, acc_hi):
                acc = T(acc + plain)
            else:
                for k in range(k0, k1):
                    acc, e = register_add(acc, T(T(a_row[k]) * T(b_row[k])), acc_lo, acc_hi,
                                          acc_shift, acc_wrap, T)  # fmt: skip
                    ev_a += e
            if chunked:
                running, e = register_add(running, acc, partial_sum_lo, partial_sum_hi,
                                          partial_sum_shift, partial_sum_wrap, T)  # fmt: skip
                ev_p += e
            else:
                running = acc
        if bias_post:
            if chunked:
                running, e = register_add(running, bias_of[j], partial_sum_lo, partial_sum_hi,
                                          partial_sum_shift, partial_sum_wrap, T)  # fmt: skip
                ev_p += e
            else:
                running, e = register_add(running, bias_of[j], acc_lo, acc_hi, acc_shift,
                                          acc_wrap, T)  # fmt: skip
                ev_a += e
        out[g, m, col[j]] = running
        acc_events[g, m, col[j]] = ev_a
        partial_sum_events[g, m, col[j]] = ev_p


@njit(cache=True, parallel=True, nogil=True)
def fold_rows(
    a, bt, n_m, rows, col_ptr, cols, brows, starts, k_starts, bias, bias_by_row, bias_post,
    bias_preload, chunk, chunked, plain_ok, acc_lo, acc_hi, acc_shift, acc_wrap, partial_sum_lo,
    partial_sum_hi, partial_sum_shift, partial_sum_wrap, T, out, acc_events, partial_sum_events,
):  # fmt: skip
    """Run the plan for selected outputs of a batched GEMM (G, M, K) @ (G, K, N).

    rows[i] = g * M + m names a row, a[i] (K,) holds its values, its columns are
    cols[col_ptr[i]:col_ptr[i + 1]], with b values bt[brows[...]] (rows of K values) and
    start values starts[...] at the same positions, and it runs from k_starts[i] on. n_m = M.
    bias is int64 (G, N), or (G, M) with bias_by_row (zeros when absent). Results and
    per-output event counts are written into out, acc_events, partial_sum_events (each
    (G, M, N)). T (np.int32 or np.int64) is the arithmetic type: int32 runs twice as many SIMD
    lanes and is exact when every register has <= 32 bits and every chunk's Σ|a·b| < 2^31.
    The rows run in parallel; each is `fold_row`.
    """
    for i in prange(rows.shape[0]):
        g = rows[i] // n_m
        m = rows[i] % n_m
        c0 = col_ptr[i]
        c1 = col_ptr[i + 1]
        bias_of = np.empty(c1 - c0, T)
        for j in range(c1 - c0):
            bias_of[j] = T(bias[g, m] if bias_by_row else bias[g, cols[c0 + j]])
        fold_row(a[i], bt, brows[c0:c1], g, m, cols[c0:c1], starts[c0:c1], k_starts[i], bias_of,
                 bias_post, bias_preload, chunk, chunked, plain_ok, T(acc_lo), T(acc_hi),
                 acc_shift, acc_wrap, T(partial_sum_lo), T(partial_sum_hi), partial_sum_shift,
                 partial_sum_wrap, out, acc_events, partial_sum_events)  # fmt: skip
