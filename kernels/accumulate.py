"""Sequential accumulator kernels: the reduction plan executed addition by addition.

These are the reference-speed path for outputs whose Σ|a·b| bound says an overflow event may
happen. They follow `plan.ReductionPlan` exactly: chunks of K in ascending k, the accumulator's
overflow rule after every product, chunk results added in order into the partial_sum register, and
the bias preloaded or added last. Arithmetic is done on int64 with overflow-free comparisons,
so registers up to 64 bits and products up to 2^62 in magnitude are exact.
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


@njit(cache=True)
def plan_row(a_row, b, g, m, col, full, bias_of, bias_post, bias_preload, k_chunk,
             acc_lo, acc_hi, acc_shift, acc_wrap, has_partial_sum, partial_sum_lo, partial_sum_hi, partial_sum_shift, partial_sum_wrap,
             out, acc_events, partial_sum_events):  # fmt: skip
    """The plan for the outputs (g, m, col[j]) of one row, whose a values are a_row (K,);
    bias_of[j] is each output's bias.

    Registers and products use the type of acc_lo (int32 or int64, see `sequential_rows`).
    """
    T = type(acc_lo)
    nc = col.shape[0]
    n_k = a_row.shape[0]
    acc = np.zeros(nc, T)
    partial_sum = np.zeros(nc, T)
    ev_a = np.zeros(nc, T)
    ev_p = np.zeros(nc, T)
    for k0 in range(0, n_k, k_chunk):
        for j in range(nc):
            acc[j] = bias_of[j] if (bias_preload and k0 == 0) else T(0)
        k1 = min(k0 + k_chunk, n_k)
        if full:
            for k in range(k0, k1):
                av = T(a_row[k])
                for j in range(nc):
                    v, e = register_add(acc[j], T(av * T(b[g, k, j])), acc_lo, acc_hi, acc_shift, acc_wrap, T)
                    acc[j] = v
                    ev_a[j] += e
        else:
            for k in range(k0, k1):
                av = T(a_row[k])
                for j in range(nc):
                    v, e = register_add(acc[j], T(av * T(b[g, k, col[j]])), acc_lo, acc_hi, acc_shift, acc_wrap, T)
                    acc[j] = v
                    ev_a[j] += e
        if has_partial_sum:
            for j in range(nc):
                v, e = register_add(partial_sum[j], acc[j], partial_sum_lo, partial_sum_hi, partial_sum_shift, partial_sum_wrap, T)
                partial_sum[j] = v
                ev_p[j] += e
    for j in range(nc):
        if has_partial_sum:
            result = partial_sum[j]
            if bias_post:
                result, e = register_add(result, bias_of[j], partial_sum_lo, partial_sum_hi, partial_sum_shift, partial_sum_wrap, T)
                ev_p[j] += e
        else:
            result = acc[j]
            if bias_post:
                result, e = register_add(result, bias_of[j], acc_lo, acc_hi, acc_shift, acc_wrap, T)
                ev_a[j] += e
        out[g, m, col[j]] = result
        acc_events[g, m, col[j]] = ev_a[j]
        partial_sum_events[g, m, col[j]] = ev_p[j]


@njit(cache=True, parallel=True, nogil=True)
def sequential_rows(
    a, b, n_m, rows, col_ptr, cols, bias, bias_by_row, bias_post, bias_preload, k_chunk,
    acc_lo, acc_hi, acc_shift, acc_wrap, has_partial_sum, partial_sum_lo, partial_sum_hi, partial_sum_shift, partial_sum_wrap,
    T, out, acc_events, partial_sum_events,
):  # fmt: skip
    """Run the plan for selected outputs of a batched GEMM (G, M, K) @ b (G, K, N).

    rows[i] = g * M + m names a row, a[i] (R, K) holds its values, and its columns are
    cols[col_ptr[i]:col_ptr[i + 1]] (a row with all N columns reads b contiguously). n_m = M. bias is int64 (G, N), or (G, M) with bias_by_row
    (zeros when absent). Results and per-output event counts are written into
    out, acc_events, partial_sum_events (each (G, M, N)). k_chunk = K when there is no chunking.
    T (np.int32 or np.int64) is the arithmetic type: int32 runs twice as many SIMD lanes and is
    exact when every register has <= 32 bits and every |product| < 2^31. The rows run in
    parallel; each is `plan_row`.
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
        plan_row(a[i], b, g, m, col, full, bias_of, bias_post, bias_preload, k_chunk,
                 T(acc_lo), T(acc_hi), acc_shift, acc_wrap, has_partial_sum, T(partial_sum_lo), T(partial_sum_hi),
                 partial_sum_shift, partial_sum_wrap, out, acc_events, partial_sum_events)  # fmt: skip
