"""Depthwise 2-D convolution in floating point (float32 or float64), a Numba loop nest.

Each output channel o reads the one input channel o // multiplier, so a GEMM has nothing to
share, and numpy's multiply-add per kernel tap made a batch-sized temporary per tap. Here each
plane is done in scratch buffers that stay in cache: the padded input plane is split into its
sh x sw stride phases (padded row r, column c goes to phase (r mod sh, c mod sw) at (r div sh,
c div sw)), which turns any stride into stride 1: kernel tap (i, j) reads one phase at a fixed
offset, so for every tap one contiguous loop (which LLVM vectorizes) adds the products into an
accumulator of the output rows laid at the phases' row pitch, and the finished rows are copied
out.

Summation order, the same for every output element: start from +0.0, then add the kh·kw
products x·w in kernel-row-major order (row i ascending, then column j ascending), each product
and each addition rounded to the array's dtype (no fused multiply-add, no reassociation: Numba
compiles without fastmath; vectorizing over output positions does not reorder any one output's
sum). A tap in the padding contributes pad_value·w in its slot, so the result is that of this
order over the explicitly padded input.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from formats.errors import RsimError
from kernels.threads import threads_for


def depthwise_conv2d_float(
    x: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    pad_value: float = 0.0,
) -> np.ndarray:
    """Depthwise convolution of NCHW x (C channels) with (C·multiplier, 1, kh, kw) weights w,
    in x's dtype (float32 or float64), no bias: (N, C·multiplier, OH, OW). Output channel o
    reads input channel o // multiplier. Pads are (top, left, bottom, right), strides and
    dilations (vertical, horizontal); the summation order is in the module docstring."""
    if x.dtype not in (np.float32, np.float64) or w.dtype != x.dtype:
        raise RsimError(f"depthwise_conv2d_float: x and w must both be float32 or float64, "
                         f"got {x.dtype} and {w.dtype}")  # fmt: skip
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != 1 or w.shape[0] % x.shape[1]:
        raise RsimError(f"depthwise_conv2d_float: weight shape {w.shape} is not depthwise for "
                         f"input shape {x.shape} (want (C·m, 1, kh, kw) for (N, C, H, W))")
    n, channels, h, wd = x.shape
    out_ch, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    top, left, bottom, right = pads
    out_h = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    y = np.empty((n, out_ch, max(out_h, 0), max(out_w, 0)), dtype=x.dtype)
    if y.size == 0:
        return y
    with threads_for(y.size * kh * kw):
        runs = min(n * out_ch, numba.get_num_threads())
        _depthwise(np.ascontiguousarray(x), np.ascontiguousarray(w.reshape(out_ch, kh, kw)),
                   sh, sw, dh, dw, top, left, x.dtype.type(pad_value), out_ch // channels,
                   runs, y)  # fmt: skip
    return y


@njit(cache=True, parallel=True, nogil=True)
def _depthwise(x, w, sh, sw, dh, dw, top, left, pad_value, multiplier, runs, y):
    """Every (sample, output channel) plane of y, in `runs` contiguous runs of planes (one per
    thread), each run with its own scratch (the phases and the accumulator, allocated once)."""
    n, out_ch, out_h, out_w = y.shape
    kh, kw = w.shape[1:]
    phase_h = -(-(sh * (out_h - 1) + dh * (kh - 1) + 1) // sh)
    phase_w = -(-(sw * (out_w - 1) + dw * (kw - 1) + 1) // sw)
    planes = n * out_ch
    for run in prange(runs):
        phases = np.full((sh, sw, phase_h * phase_w), pad_value, dtype=x.dtype)
        acc = np.empty((out_h - 1) * phase_w + out_w, dtype=x.dtype)
        split = -1  # the input plane (sample · channels + channel) now in `phases`
        for plane in range(run * planes // runs, (run + 1) * planes // runs):
            b, o = plane // out_ch, plane % out_ch
            source = b * x.shape[1] + o // multiplier
            if source != split:
                _split_phases(x[b, o // multiplier], top, left, phase_h, phase_w, phases)
                split = source
            _accumulate_taps(phases, w[o], dh, dw, phase_w, acc)
            out = y[b, o]
            for oy in range(out_h):
                out[oy] = acc[oy * phase_w : oy * phase_w + out_w]


@njit(cache=True, nogil=True)
def _split_phases(src, top, left, phase_h, phase_w, phases):
    """Write input plane `src` into its place in the stride phases of the padded plane (the
    padding around it already holds the pad value and is never written)."""
    sh, sw = phases.shape[:2]
    h, wd = src.shape
    for a in range(sh):
        # phase row r holds padded row r·sh + a, input row r·sh + a - top
        r_lo, r_hi = inside_range(phase_h, h, a - top, sh)
        for b in range(sw):
            c_lo, c_hi = inside_range(phase_w, wd, b - left, sw)
            phase = phases[a, b]
            for r in range(r_lo, r_hi):
                dst = phase[r * phase_w + c_lo : r * phase_w + c_hi]
                line = src[r * sh + a - top, c_lo * sw + b - left :]
                for k in range(dst.size):
                    dst[k] = line[sw * k]


@njit(cache=True, nogil=True, inline="always")
def inside_range(count, size, shift, step):
    """The range [lo, hi) of k in [0, count) whose index k·step + shift lies in [0, size): the
    output positions whose kernel tap falls inside the input, not in the padding (also called
    from Python by `kernels.fconv`)."""
    lo = min(count, max(0, (step - 1 - shift) // step))
    return lo, max(lo, min(count, (size - 1 - shift) // step + 1))


@njit(cache=True, nogil=True)
def _accumulate_taps(phases, w, dh, dw, phase_w, acc):
    """acc = +0.0 + the products of the kh·kw taps in row-major order: output (oy, ox) sits at
    acc[oy·phase_w + ox], and tap (i, j) reads the phase of (i·dh, j·dw) at a fixed offset."""
    sh, sw = phases.shape[:2]
    kh, kw = w.shape
    acc[:] = 0
    for i in range(kh):
        for j in range(kw):
            offset = (i * dh // sh) * phase_w + j * dw // sw
            line = phases[i * dh % sh, j * dw % sw, offset:]
            weight = w[i, j]
            for q in range(acc.size):
                acc[q] += weight * line[q]
