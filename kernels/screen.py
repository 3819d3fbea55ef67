"""Block screening: which outputs' running sums provably never leave the registers.

K is cut into blocks (whole chunks of the plan). For each output, BLAS gives each block's exact
sum s_i and its Σ|a·b| (or an upper bound of it) u_i, hence the exact running sum q_i at every
block boundary (q_-1 is the preloaded bias, or 0). Any running sum inside block i,
p = q_(i-1) + x = q_i - y with |x| + |y| <= u_i, lies within (q_(i-1) + q_i ± u_i) / 2. When
that interval is inside the running register's range for every block (the partial sum with a
k_chunk, whose states are running sums at chunk ends, else the accumulator), and with a k_chunk
every chunk's own accumulator is safe too (u_i, or a bound of each chunk's Σ|a·b|, + |bias| for
a preloaded first block, <= the accumulator's max), no overflow event can happen before the
end: the result is the exact sum, plus the post bias added in its register (one possible
event, counted here). Other outputs continue sequentially (`kernels.accumulate`) from the first
block that fails the test, starting from the exact q_(i-1).

Sums of absolute values grow with the block length, the running sums' excursions only with its
square root, so blocks of a few hundred products prove typical layers safe where one bound
over all of K cannot.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels.accumulate import register_add

SCREEN_LIMIT = 1 << 60  # screening runs in int64 on values and registers within 2^60
NO_CHUNK_LIMITS = (np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64))
_FLOAT64_SCREEN = 1 << 50  # below this, every value of the screen (and 4 times it) is exact


def screen_type(largest: int) -> type:
    """The screen's arithmetic type when no running sum, bound or register limit exceeds
    `largest` in magnitude (registers too: the caller passes the larger)."""
    return np.float64 if largest < _FLOAT64_SCREEN else np.int64


@njit(cache=True, parallel=True, nogil=True)
def screen_blocks(sums, spreads, rows, base, bias, by_row, bias_post, check_chunks, acc_hi, preload,
                  row_limits, column_limits, lo, hi, safe_limit, post_lo, post_hi, post_shift,
                  post_wrap, F, out, post_events, start_block):  # fmt: skip
    """Screen rows rows[r] of one group.

    sums, spreads (blocks, R, N) are each block's exact sum and an integer-valued upper bound
    of its Σ|a·b| (floats); base and bias (int64) are per column n, or per row r with by_row:
    the running register's value before block 0 and the bias. [lo, hi] is the running
    register's range. With check_chunks, every chunk's accumulator must stay within acc_hi: a
    block passes when its bound does, or when row_limits[r, i]·column_limits[n, i] (int64,
    (R, blocks) and (N, blocks)) bounds the Σ|a·b| of each of its chunks within it (+ the
    preloaded bias in the first block).

    F is the arithmetic type: np.float64 (vectorizes; exact while every value stays within
    2^52) or np.int64. Columns are pixels of samples: out, post_events and start_block are
    (samples, M, P) with n = sample·P + p. Writes start_block[., rows[r], .] = the first
    block that fails (the block count: none) and, for outputs that pass, out and post_events (the post bias's event;
    written when 1). Returns how many outputs failed, and how many outputs the bound
    Σ|a·b| + |bias| <= safe_limit does not prove event-free (the failed ones among them).
    """
    n_blocks, n_r, n_n = sums.shape
    per_sample = out.shape[2]
    failures = 0
    at_risk = 0
    for r in prange(n_r):
        m = rows[r]
        q = np.empty(n_n, F)
        spread = np.empty(n_n, F)
        failed = np.full(n_n, F(n_blocks))  # the first failing block, as F (one type: SIMD)
        top, bottom, acc_top = F(2 * hi), F(2 * lo), F(acc_hi)
        for n in range(n_n):
            q[n] = F(base[r] if by_row else base[n])
            spread[n] = F(abs(bias[r] if by_row else bias[n]))
        for i in range(n_blocks):  # block by block, each pass branch-free over a row
            block, first = F(i), preload and i == 0
            s_row, u_row = sums[i, r], spreads[i, r]
            if check_chunks:
                limits = np.empty(n_n, F)
                for n in range(n_n):
                    b = F(abs(bias[r] if by_row else bias[n])) if first else F(0)
                    chunk_bound = F(row_limits[r, i] * column_limits[n, i])
                    limits[n] = min(F(spreads[i, r, n]), chunk_bound) + b
            for n in range(n_n):
                u = F(u_row[n])
                q_next = q[n] + F(s_row[n])
                ok = (q[n] + q_next + u <= top) & (q[n] + q_next - u >= bottom)
                if check_chunks:
                    ok &= limits[n] <= acc_top
                active = failed[n] == F(n_blocks)
                take = ok & active
                q[n] = q_next if take else q[n]
                spread[n] += u if take else F(0)
                failed[n] = block if (active ^ take) else failed[n]
        for n in range(n_n):
            sample, p = n // per_sample, n % per_sample
            start_block[sample, m, p] = np.int64(failed[n])
            if failed[n] < F(n_blocks):
                failures += 1
                at_risk += 1
                continue
            if spread[n] > F(safe_limit):
                at_risk += 1
            value = np.int64(q[n])
            if bias_post:
                value, event = register_add(value, bias[r] if by_row else bias[n], post_lo,
                                            post_hi, post_shift, post_wrap, np.int64)  # fmt: skip
                if event:
                    post_events[sample, m, p] = event
            out[sample, m, p] = value
    return failures, at_risk


@njit(cache=True, parallel=True, nogil=True)
def chunk_limits(values, k_chunk, block, by_sum, transposed, out):
    """Per line of values and block of K: the largest Σ|v| over a chunk in the block (by_sum)
    or the largest |v| in the block, as int64 into out (lines, blocks). values is (lines, K),
    or (K, lines) when transposed (then lines run in tiles, each k row read contiguously);
    integer-valued."""
    n_lines, n_blocks = out.shape
    n_k = values.shape[0] if transposed else values.shape[1]
    tile = 512 if transposed else 1
    for t in prange(-(-n_lines // tile)):
        first, last = t * tile, min((t + 1) * tile, n_lines)
        width = last - first
        total = np.zeros(width, np.int64)
        largest = np.zeros(width, np.int64)
        for i in range(n_blocks):
            largest[:] = 0
            for k0 in range(i * block, min((i + 1) * block, n_k), k_chunk):
                total[:] = 0
                for k in range(k0, min(k0 + k_chunk, n_k)):
                    if transposed:
                        row = values[k, first:last]
                        if by_sum:
                            for j in range(width):
                                total[j] += np.int64(abs(row[j]))
                        else:
                            for j in range(width):
                                total[j] = max(total[j], np.int64(abs(row[j])))
                    else:
                        v = np.int64(abs(values[first, k]))
                        total[0] = total[0] + v if by_sum else max(total[0], v)
                for j in range(width):
                    largest[j] = max(largest[j], total[j])
            out[first:last, i] = largest
