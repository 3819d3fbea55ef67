"""Integer convolutions whose registers are narrower than their sums: block screening on float32
patches, without integer im2col.

The patches of a few samples at a time are gathered in float32 in the reduction order (input
channel, kernel row, kernel column: K order "chw", one group), and per block of whole input
channels one GEMM gives every output's exact block sum. The bound of the block's Σ|x·w| that
`kernels.screen` needs costs a third of that: the kw taps of a kernel row share one weight,
their largest |w|, so it is a GEMM of those maxima against the patches of the row sums of |x|
(kw taps summed once per input row), of depth K/kw. With both, the screen proves an output
event-free or names the first block where it may not be; those outputs continue in the
sequential kernel (`kernels.accumulate`) from their exact running sum, on integer patches
gathered for their pixels only.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels.accumulate import fold_rows
from kernels.fconv import im2col, pad_nchw
from kernels.gemm import (
    FLOAT32_EXACT,
    RegisterArgs,
    max_abs,
    screen_block_length,
    smallest_int_dtype,
)
from kernels.plan import AccumulatorStats, ReductionPlan
from kernels.screen import NO_CHUNK_LIMITS, chunk_limits, screen_blocks, screen_type
from kernels.threads import blas_threads_for, threads_for

_PATCH_BYTES = 1 << 23  # float32 patches gathered at a time (whole samples)
NO_PADS = (0, 0, 0, 0)  # the input is padded already (its row sums are taken over the padding)


@njit(cache=True, parallel=True, nogil=True)
def _pixel_patches(x, pixels, kh, kw, sh, sw, dh, dw, top, left, oh, ow, pad_value, out):
    """out[r] = the K taps (chw order) of output pixel pixels[r] = (n·oh + y)·ow + x."""
    _, n_c, h, wd = x.shape
    for r in prange(pixels.shape[0]):
        n = pixels[r] // (oh * ow)
        y = (pixels[r] // ow) % oh
        xo = pixels[r] % ow
        for c in range(n_c):
            for i in range(kh):
                iy = y * sh - top + i * dh
                for j in range(kw):
                    ix = xo * sw - left + j * dw
                    inside = 0 <= iy < h and 0 <= ix < wd
                    out[r, (c * kh + i) * kw + j] = x[n, c, iy, ix] if inside else pad_value


def screened_conv(x, w, stride, pads, dilation, out_hw, pad_value, plan: ReductionPlan, bias):
    """conv2d (groups 1, K order chw) of validated codes by block screening, or None when the
    block sums cannot be exact in float32, the registers are too wide to screen or no block
    length is both whole chunks and whole kernel rows."""
    n_b, n_c, _, _ = x.shape
    n_o, _, kh, kw = w.shape
    n_k = n_c * kh * kw
    x_max, w_max = max(max_abs(x), abs(pad_value)), max_abs(w)
    max_product = x_max * w_max
    bias_max = 0 if bias is None else max_abs(bias)
    registers = RegisterArgs(plan, np.zeros((1, n_o), np.int64) if bias is None
                             else bias.astype(np.int64)[None], bias is not None)  # fmt: skip
    block = screen_block_length(registers, n_k, max_product, bias_max, kw)
    if block is None or block * max_product > FLOAT32_EXACT:
        return None
    weights = w.reshape(n_o, n_k)
    weights_f = weights.astype(np.float32)
    row_maxima = np.abs(weights_f).reshape(n_o, n_c * kh, kw).max(axis=2)
    bounds = [(k0, min(k0 + block, n_k)) for k0 in range(0, n_k, block)]
    xp = pad_nchw(x.astype(np.float32), pads, float(pad_value))
    row_sums = _row_sums(np.abs(xp), kw, dilation[1])
    pixels = out_hw[0] * out_hw[1]
    shape = (n_b, n_o, pixels)
    out = np.empty(shape, np.int64)
    acc_events, partial_sum_events = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    post = registers.running
    base = registers.base()[0]
    check = registers.chunks_need_checks(max_product)
    weight_limits, pixel_limits = NO_CHUNK_LIMITS
    if check:  # each chunk's Σ|x·w| <= (the block's largest |w|)·(the chunk's Σ|x|)
        weight_limits = np.empty((n_o, len(bounds)), np.int64)
        chunk_limits(weights, plan.k_chunk, block, False, False, weight_limits)
    chunk = max(1, _PATCH_BYTES // (n_k * pixels * 4))
    channels = np.arange(n_o)
    flagged = []
    n_risk = 0
    for first in range(0, n_b, chunk):
        last = min(first + chunk, n_b)
        patches = im2col(xp[first:last], (kh, kw), stride, dilation, NO_PADS,
                         out_hw).reshape(n_k, -1)
        row_patches = im2col(row_sums[first:last], (kh, 1), stride, (dilation[0], 1), NO_PADS,
                             out_hw).reshape(n_c * kh, -1)  # fmt: skip
        sums, spreads = _block_sums(weights_f, row_maxima, patches, row_patches, bounds, kw)
        if check:
            pixel_limits = np.empty((patches.shape[1], len(bounds)), np.int64)
            with threads_for(patches.size):
                chunk_limits(patches, plan.k_chunk, block, True, True, pixel_limits)
        start_block = np.empty((last - first, n_o, pixels), np.int64)
        with threads_for(sums.size):
            failures, at_risk = screen_blocks(
                sums, spreads, channels, base, registers.bias[0], True, registers.bias_post,
                check, plan.accumulator.hi, registers.bias_preload, weight_limits, pixel_limits,
                post.lo, post.hi, plan.safe_limit, post.lo, post.hi, 64 - post.bits,
                post.overflow.value == "wrap", screen_type(n_k * max_product + bias_max),
                out[first:last],
                (partial_sum_events if registers.chunked else acc_events)[first:last],
                start_block)  # fmt: skip
        n_risk += at_risk
        if failures:
            flagged.append(_restart_points(sums, start_block, base, first, registers.chunked))
    if flagged:
        _fold_flagged(x, w, stride, pads, dilation, out_hw, pad_value, registers, block,
                      max(x_max, w_max), x_max, w_max, flagged, out, acc_events,
                      partial_sum_events)  # fmt: skip
    nchw = (n_b, n_o) + tuple(out_hw)
    if not n_risk or not (acc_events.any() or partial_sum_events.any()):
        no_events = np.broadcast_to(np.zeros((), np.int64), nchw)
        return out.reshape(nchw), AccumulatorStats(no_events, no_events, 1, n_risk)
    return out.reshape(nchw), AccumulatorStats(acc_events.reshape(nchw),
                                               partial_sum_events.reshape(nchw), 1, n_risk)


def _row_sums(abs_xp: np.ndarray, kw: int, dilation: int) -> np.ndarray:
    """(N, C, Hp, Wp - dilation·(kw - 1)): the sum of the kw taps of a kernel row starting at
    each column of the padded |x|."""
    width = abs_xp.shape[3] - dilation * (kw - 1)
    total = abs_xp[..., :width].copy()
    for j in range(1, kw):
        total += abs_xp[..., j * dilation:j * dilation + width]
    return total


def _block_sums(weights, row_maxima, patches, row_patches, bounds, kw):
    """(blocks, O, pixels) float32 each: the blocks' exact sums, and upper bounds of their
    Σ|x·w| (each kernel row's largest |w| times its taps' Σ|x|), integers within 2^24."""
    n_o, n_px = weights.shape[0], patches.shape[1]
    sums = np.empty((len(bounds), n_o, n_px), np.float32)
    spreads = np.empty_like(sums)
    with blas_threads_for(n_o * (bounds[0][1] - bounds[0][0]) * n_px):
        for i, (k0, k1) in enumerate(bounds):
            sums[i] = weights[:, k0:k1] @ patches[k0:k1]
            spreads[i] = row_maxima[:, k0 // kw:k1 // kw] @ row_patches[k0 // kw:k1 // kw]
    return sums, spreads


def _restart_points(sums, start_block, base, first, chunked):
    """The outputs of samples first.. that failed the screen, grouped by pixel: (pixels as
    sample·P + p, channels, per-pixel start block, first-of-pixel flags, start values there). A
    pixel restarts at the earliest start block of its outputs; each output's running register
    value there is its exact running sum (the partial sum's 0 before the first block: the
    kernel preloads the first chunk)."""
    n_blocks = sums.shape[0]
    per_sample = start_block.shape[2]
    sample, channel, p = np.nonzero(start_block < n_blocks)
    column = sample * per_sample + p  # the pixel's column in sums
    order = np.lexsort((channel, column))
    sample, channel, p, column = sample[order], channel[order], p[order], column[order]
    first_of_pixel = np.ones(column.size, bool)
    first_of_pixel[1:] = column[1:] != column[:-1]
    pixel_id = np.cumsum(first_of_pixel) - 1
    starts = start_block[sample, channel, p]
    pixel_block = np.minimum.reduceat(starts, np.flatnonzero(first_of_pixel))
    block = pixel_block[pixel_id]
    block_sums = sums[:, channel, column].astype(np.int64)
    before = np.arange(n_blocks)[:, None] < block[None, :]
    values = base[channel] + np.where(before, block_sums, 0).sum(axis=0)
    if chunked:
        values[block == 0] = 0
    return column + first * per_sample, channel, pixel_block, first_of_pixel, values


def _fold_flagged(x, w, stride, pads, dilation, out_hw, pad_value, registers, block, code_max,
                  x_max, w_max, flagged, out, acc_events, partial_sum_events) -> None:  # fmt: skip
    """Run the outputs that failed the screen in the sequential kernel from their restart
    points, one row per pixel (its patch gathered here), and write them into the (N, O, P)
    results."""
    pixel = np.concatenate([f[0] for f in flagged])
    channel = np.concatenate([f[1] for f in flagged]).astype(np.int64)
    pixel_block = np.concatenate([f[2] for f in flagged])
    first_of_pixel = np.concatenate([f[3] for f in flagged])
    values = np.concatenate([f[4] for f in flagged])
    rows = pixel[first_of_pixel]
    col_ptr = np.append(np.flatnonzero(first_of_pixel), pixel.size).astype(np.int64)
    dtype = smallest_int_dtype(code_max)
    n_o, _, kh, kw = w.shape
    patches = np.empty((rows.size, w[0].size), dtype)
    with threads_for(patches.size):
        _pixel_patches(x, rows, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0],
                       pads[1], out_hw[0], out_hw[1], pad_value, patches)  # fmt: skip
    weights = np.ascontiguousarray(w.reshape(n_o, -1).T[None], dtype=dtype)
    results = [np.zeros((1, rows.size, n_o), np.int64) for _ in range(3)]
    with threads_for(pixel.size * w[0].size):
        fold_rows(patches, weights, rows.size, np.arange(rows.size, dtype=np.int64), col_ptr,
                  channel, values, pixel_block * block, registers.bias, False,
                  *registers.numba_args(x_max, w_max), *results)  # fmt: skip
    row_of = np.repeat(np.arange(rows.size), np.diff(col_ptr))
    sample, p = np.divmod(pixel, out.shape[2])
    for full, part in zip((out, acc_events, partial_sum_events), results):
        full[sample, channel, p] = part[0, row_of, channel]
