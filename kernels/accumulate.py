"""Sequential accumulator kernels: the reduction plan executed chunk by chunk, from any chunk on.

These run the outputs that no bound proves event-free. They follow `plan.ReductionPlan`
exactly: chunks of K in ascending k, the accumulator's overflow rule after every product,
chunk results added in order into the partial_sum register, and the bias preloaded or added
last. Each output may start at a later chunk from a known register state (the exact running sum
up to there, which `kernels.screen` proves event-free). Arithmetic is done on int32 or int64 with
overflow-free comparisons, so registers up to 64 bits and products up to 2^62 are exact.

A chunk is first summed plainly (with Σ|a·b| beside it, vectorized across the outputs of a row):
when the accumulator's start value ± that Σ|a·b| stays inside the register, no addition of the
chunk can leave it and the plain sum is the chunk's exact result; only the other chunks run
the product loop with the overflow rule after every addition. Without a partial-sum step
(k_chunk None) the same test runs on blocks of K of the one accumulator.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_RETRY = 4  # after a chunk most outputs of a row fail, try plain sums again every 4th chunk


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
def _chunk_start(acc, running, bias_of, chunked, preload, zero):
    """acc[j] = the accumulator's value at the start of a chunk: the running accumulator
    (k_chunk None), else 0, or the bias when it is preloaded into this (the first) chunk."""
    for j in range(acc.shape[0]):
        if not chunked:
            acc[j] = running[j]
        elif preload:
            acc[j] = bias_of[j]
        else:
            acc[j] = zero


@njit(cache=True)
def fold_row(a_row, b, g, m, col, full, start, k_start, bias_of, bias_post, bias_preload, chunk,
             chunked, plain_ok, acc_lo, acc_hi, acc_shift, acc_wrap, partial_sum_lo,
             partial_sum_hi, partial_sum_shift, partial_sum_wrap, out, acc_events,
             partial_sum_events):  # fmt: skip
    """The plan for the outputs (g, m, col[j]) of one row (a values a_row (K,)) from k_start
    (a chunk boundary) on, each starting from start[j]: the partial sum (chunked) or the
    accumulator (k_chunk None, preload bias included). bias_of[j] is each output's bias.

    chunk is k_chunk, or the block length the plain-sum test uses without chunking. plain_ok
    says whether a chunk's plain and absolute sums fit the type of acc_lo (int32 or int64).
    Loops run across the row's outputs (SIMD lanes); a chunk that many outputs fail runs the
    product loop for all of them (an output that passed gets the same exact result), one that
    few fail only for those. After a chunk that many failed, the next chunks skip the plain
    sums (saturated registers stay saturated) until every `_RETRY`-th chunk tries again.
    """
    T = type(acc_lo)
    nc = col.shape[0]
    n_k = a_row.shape[0]
    running = np.empty(nc, T)
    for j in range(nc):
        running[j] = T(start[j])
    acc = np.empty(nc, T)
    ev_a = np.zeros(nc, T)
    ev_p = np.zeros(nc, T)
    plain = np.zeros(nc, T)
    spread = np.zeros(nc, T)
    fails = np.ones(nc, np.bool_)
    skip = 0
    zero = T(0)
    for k0 in range(k_start, n_k, chunk):
        k1 = min(k0 + chunk, n_k)
        _chunk_start(acc, running, bias_of, chunked, bias_preload and k0 == 0, zero)
        n_fail = nc
        tried = False
        if skip:
            skip -= 1
        elif plain_ok:
            tried = True
            plain[:] = 0
            spread[:] = 0
            if full:
                for k in range(k0, k1):
                    av = T(a_row[k])
                    aa = abs(av)
                    for j in range(nc):
                        bv = T(b[g, k, j])
                        plain[j] += av * bv
                        spread[j] += aa * abs(bv)
            else:
                for k in range(k0, k1):
                    av = T(a_row[k])
                    aa = abs(av)
                    for j in range(nc):
                        bv = T(b[g, k, col[j]])
                        plain[j] += av * bv
                        spread[j] += aa * abs(bv)
            n_fail = 0
            for j in range(nc):
                fails[j] = not stays_inside(acc[j], spread[j], acc_lo, acc_hi)
                n_fail += fails[j]
                if not fails[j]:
                    acc[j] += plain[j]
        if n_fail * 4 > nc:  # the product loop across all outputs, vectorized
            if tried:
                skip = _RETRY - 1
                _chunk_start(acc, running, bias_of, chunked, bias_preload and k0 == 0, zero)
            if full:
                for k in range(k0, k1):
                    av = T(a_row[k])
                    for j in range(nc):
                        v, e = register_add(acc[j], T(av * T(b[g, k, j])), acc_lo, acc_hi,
                                            acc_shift, acc_wrap, T)  # fmt: skip
                        acc[j] = v
                        ev_a[j] += e
            else:
                for k in range(k0, k1):
                    av = T(a_row[k])
                    for j in range(nc):
                        v, e = register_add(acc[j], T(av * T(b[g, k, col[j]])), acc_lo, acc_hi,
                                            acc_shift, acc_wrap, T)  # fmt: skip
                        acc[j] = v
                        ev_a[j] += e
        elif n_fail:
            for j in range(nc):
                if fails[j]:
                    for k in range(k0, k1):
                        p = T(T(a_row[k]) * T(b[g, k, col[j]]))
                        v, e = register_add(acc[j], p, acc_lo, acc_hi, acc_shift, acc_wrap, T)
                        acc[j] = v
                        ev_a[j] += e
        if chunked:
            for j in range(nc):
                v, e = register_add(running[j], acc[j], partial_sum_lo, partial_sum_hi,
                                    partial_sum_shift, partial_sum_wrap, T)  # fmt: skip
                running[j] = v
                ev_p[j] += e
        else:
            for j in range(nc):
                running[j] = acc[j]
    for j in range(nc):
        result = running[j]
        if bias_post:
            if chunked:
                result, e = register_add(result, bias_of[j], partial_sum_lo, partial_sum_hi,
                                         partial_sum_shift, partial_sum_wrap, T)  # fmt: skip
                ev_p[j] += e
            else:
                result, e = register_add(result, bias_of[j], acc_lo, acc_hi, acc_shift, acc_wrap, T)
                ev_a[j] += e
        out[g, m, col[j]] = result
        acc_events[g, m, col[j]] = ev_a[j]
        partial_sum_events[g, m, col[j]] = ev_p[j]


@njit(cache=True, parallel=True, nogil=True)
def fold_rows(
    a, b, n_m, rows, col_ptr, cols, starts, k_starts, bias, bias_by_row, bias_post, bias_preload,
    chunk, chunked, plain_ok, acc_lo, acc_hi, acc_shift, acc_wrap, partial_sum_lo, partial_sum_hi,
    partial_sum_shift, partial_sum_wrap, T, out, acc_events, partial_sum_events,
):  # fmt: skip
    """Run the plan for selected outputs of a batched GEMM (G, M, K) @ b (G, K, N).

    rows[i] = g * M + m names a row, a[i] (K,) holds its values, its columns are
    cols[col_ptr[i]:col_ptr[i + 1]] with start values starts[col_ptr[i]:col_ptr[i + 1]], and
    it runs from k_starts[i] on (a row with all N columns reads b contiguously). n_m = M. bias
    is int64 (G, N), or (G, M) with bias_by_row (zeros when absent). Results and per-output
    event counts are written into out, acc_events, partial_sum_events (each (G, M, N)).
    T (np.int32 or np.int64) is the arithmetic type: int32 runs twice as many SIMD lanes and
    is exact when every register has <= 32 bits and every chunk's Σ|a·b| < 2^31.
    The rows run in parallel; each is `fold_row`.
    """
    n_n = b.shape[2]
    for i in prange(rows.shape[0]):
        g = rows[i] // n_m
        m = rows[i] % n_m
        c0 = col_ptr[i]
        nc = col_ptr[i + 1] - c0
        full = nc == n_n
        col = np.empty(nc, np.int64)
        bias_of = np.empty(nc, T)
        for j in range(nc):
            col[j] = j if full else cols[c0 + j]
            bias_of[j] = T(bias[g, m] if bias_by_row else bias[g, col[j]])
        fold_row(a[i], b, g, m, col, full, starts[c0:c0 + nc], k_starts[i], bias_of, bias_post,
                 bias_preload, chunk, chunked, plain_ok, T(acc_lo), T(acc_hi), acc_shift, acc_wrap,
                 T(partial_sum_lo), T(partial_sum_hi), partial_sum_shift, partial_sum_wrap, out,
                 acc_events, partial_sum_events)  # fmt: skip
