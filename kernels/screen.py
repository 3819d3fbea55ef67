"""Block screening: which outputs' running sums provably never leave the registers.

K is cut into blocks (whole chunks of the plan). For each output, BLAS gives each block's exact
sum s_i and its Σ|a·b| u_i, hence the exact running sum q_i at every block boundary (q_-1 is
the preloaded bias, or 0). Any running sum inside block i, p = q_(i-1) + x = q_i - y with
|x| + |y| <= u_i, lies within (q_(i-1) + q_i ± u_i) / 2. When that interval is inside the
running register's range for every block (the partial sum with a k_chunk, whose states are
running sums at chunk ends, else the accumulator), and with a k_chunk every chunk's own
accumulator is safe too (u_i, + |bias| for a preloaded first block, <= the accumulator's max),
no overflow event can happen before the end: the result is the exact sum, plus the post bias
added in its register (one possible event, counted here). Other outputs continue sequentially
(`kernels.accumulate`) from the first block that fails the test, starting from the exact
q_(i-1).

Sums of absolute values grow with the block length, the running sums' excursions only with its
square root, so blocks of a few hundred products prove typical layers safe where one bound
over all of K cannot.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels.accumulate import register_add

SCREEN_LIMIT = 1 << 60  # screening runs in int64 on values and registers within 2^60


@njit(cache=True, parallel=True, nogil=True)
def screen_blocks(sums, spreads, rows, base, bias, bias_post, chunked, acc_hi, preload, lo, hi,
                  post_lo, post_hi, post_shift, post_wrap, out, post_events, start_block):  # fmt: skip
    """Screen rows rows[r] of one group: sums, spreads (blocks, R, N) are each block's exact
    sum and an integer-valued upper bound of its Σ|a·b| (floats), base (N,) the running
    register's value before block 0, bias (N,) int64. [lo, hi] is the running register's range;
    acc_hi the accumulator's max (chunked). Writes start_block[rows[r], n] = the first block
    that fails (the block count: none) and, for outputs that pass, out and post_events (M, N)
    (the post bias's event). Returns how many outputs failed.
    """
    n_blocks, n_r, n_n = sums.shape
    failures = 0
    for r in prange(n_r):
        m = rows[r]
        for n in range(n_n):
            q = base[n]
            failed = n_blocks
            for i in range(n_blocks):
                s = np.int64(sums[i, r, n])
                u = np.int64(spreads[i, r, n])
                q_next = q + s
                ok = q + q_next + u <= 2 * hi and q + q_next - u >= 2 * lo
                if chunked:
                    ok = ok and u + (abs(bias[n]) if (preload and i == 0) else 0) <= acc_hi
                if not ok:
                    failed = i
                    break
                q = q_next
            start_block[m, n] = failed
            if failed < n_blocks:
                failures += 1
                continue
            if bias_post:
                q, event = register_add(q, bias[n], post_lo, post_hi, post_shift, post_wrap,
                                        np.int64)  # fmt: skip
                if event:
                    post_events[m, n] = event
            out[m, n] = q
    return failures
