"""Max and average pooling on integer codes (NCHW), as an integer datapath computes them.

Average pooling sums the window exactly (int64) and divides by the tap count with an explicit
integer-division rounding: `rounding` is any `formats.modes.Rounding`, default nearest_away,
which is TFLite's int8 AveragePool ((sum ± count/2) / count, ties away from zero). Stochastic
rounding is floor(sum/count + u) with u = rng.random().

Windows follow ONNX/PyTorch: `padding` int, (h, w) or (top, left, bottom, right); with
`ceil_mode` the output size rounds up, but a last window starting inside the bottom/right
padding is dropped (as Caffe and PyTorch do). Max pooling ignores padded taps. Average pooling
counts padded taps only with `count_include_pad` (those inside the padded input, never those past
its edge in ceil mode).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.errors import RsimError
from formats.modes import Rounding, as_rounding
from formats.rounding_nb import (
    FLOOR,
    NEAREST_AWAY,
    NEAREST_EVEN,
    NEAREST_UP,
    STOCHASTIC,
    TOWARD_ZERO,
)
from kernels.conv import _pads, _pair
from kernels.fconv import pad_nchw, tap


@njit(cache=True)
def divide_round(num, den, rounding, u):
    """num / den rounded to an integer (int64 num, 0 < den < 2^62), exactly, in mode `rounding`.

    Stochastic: floor(num/den + u), u a multiple of 2^-53; carry when 2^53 − u·2^53 <=
    floor(r·2^53 / den), evaluated by long division on int64 (two 26/27-bit steps while
    den < 2^36, bit by bit above).
    """
    q = num // den
    r = num - q * den  # 0 <= r < den
    if r == 0 or rounding == FLOOR:
        return q
    if rounding == TOWARD_ZERO:
        return q + (1 if num < 0 else 0)
    twice = 2 * r
    if rounding == NEAREST_UP:
        return q + (1 if twice >= den else 0)
    if rounding == NEAREST_AWAY:
        return q + (1 if (twice > den or (twice == den and num > 0)) else 0)
    if rounding == NEAREST_EVEN:
        return q + (1 if (twice > den or (twice == den and (q & 1) == 1)) else 0)
    if rounding == STOCHASTIC:
        if den < (np.int64(1) << 36):
            high = (r << 26) // den
            rest = (r << 26) - high * den
            fraction = (high << 27) + (rest << 27) // den  # floor(r · 2^53 / den)
        else:
            fraction = np.int64(0)
            for _ in range(53):  # r < den < 2^62: doubling r stays inside int64
                r *= 2
                bit = 1 if r >= den else 0
                r -= bit * den
                fraction = fraction * 2 + bit
        u_int = np.int64(u * 9007199254740992.0)
        return q + (1 if (np.int64(1) << 53) - u_int <= fraction else 0)
    return q


def _out_size(size: int, k_eff: int, stride: int, before: int, after: int, ceil_mode: bool) -> int:
    span = size + before + after - k_eff
    if span < 0:
        raise RsimError(f"kernel: the window ({k_eff}) is larger than the padded input ({size + before + after})")
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    return out


@njit(cache=True, nogil=True)
def _avg_pool(x, kh, kw, sh, sw, dh, dw, top, left, pad_h_end, pad_w_end, oh, ow, count_pad,
              shift, rounding, u, out):  # fmt: skip
    """Exact window sums divided by the tap count times 2^shift, rounded once (0 for a window
    with no tap)."""
    n_b, n_c, h, w = x.shape
    stochastic = rounding == STOCHASTIC
    for r in range(n_b * n_c):
        n = r // n_c
        c = r % n_c
        for y in range(oh):
            for xo in range(ow):
                total = np.int64(0)
                count = 0
                for i in range(kh):
                    iy = y * sh - top + i * dh
                    for j in range(kw):
                        ix = xo * sw - left + j * dw
                        inside = 0 <= iy < h and 0 <= ix < w
                        if inside:
                            total += np.int64(x[n, c, iy, ix])
                            count += 1
                        elif count_pad and -top <= iy < h + pad_h_end and -left <= ix < w + pad_w_end:
                            count += 1
                if count == 0:
                    out[n, c, y, xo] = 0
                else:
                    ui = u[(r * oh + y) * ow + xo] if stochastic else 0.0
                    out[n, c, y, xo] = divide_round(total, np.int64(count) << shift, rounding, ui)


def _pool_args(x, kernel, stride, padding, dilation, ceil_mode, kinds="iu", what="integer codes"):
    arr = np.asarray(x)
    if arr.dtype.kind not in kinds or arr.ndim != 4:
        raise RsimError(f"x: must be 4-D (NCHW) {what}, got {arr.dtype} {arr.shape}")
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(kernel if stride is None else stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    top, left, bottom, right = _pads(padding)
    if max(top, bottom) >= kh * dh or max(left, right) >= kw * dw:
        raise RsimError(f"padding: {padding!r} must be smaller than the kernel {kh}x{kw}")
    oh = _out_size(arr.shape[2], dh * (kh - 1) + 1, sh, top, bottom, ceil_mode)
    ow = _out_size(arr.shape[3], dw * (kw - 1) + 1, sw, left, right, ceil_mode)
    return arr, (kh, kw, sh, sw, dh, dw, top, left, bottom, right, oh, ow)


def _covered(n_out: int, stride: int, begin: int, dilation: int, size: int, k: int) -> np.ndarray:
    """Per output position along one axis: whether any kernel tap falls inside the input."""
    starts = np.arange(n_out) * stride - begin
    taps = starts[:, None] + dilation * np.arange(k)[None, :]
    return ((taps >= 0) & (taps < size)).any(axis=1)


def max_pool2d(x: np.ndarray, kernel: int | tuple[int, int], *, stride=None, padding=0,
               dilation=1, ceil_mode: bool = False) -> np.ndarray:  # fmt: skip
    """Max over each window of NCHW integer codes or float values (padded taps ignored; NaN
    propagates), in x's dtype. A window with no tap inside the input (dilated windows in the
    padding) gives 0 for codes and -inf for floats.

    A running maximum over the kernel's tap views of the input padded with the dtype's lowest
    value: a few vectorized passes, faster than a per-window loop."""
    arr, (kh, kw, sh, sw, dh, dw, top, left, bottom, right, oh, ow) = _pool_args(
        x, kernel, stride, padding, dilation, ceil_mode, "iuf", "integer codes or floats")
    floats = arr.dtype.kind == "f"
    lowest = -np.inf if floats else np.iinfo(arr.dtype).min
    # ceil mode: the last window may hang past the end padding
    below = max(bottom, (oh - 1) * sh + dh * (kh - 1) + 1 - arr.shape[2] - top)
    beyond = max(right, (ow - 1) * sw + dw * (kw - 1) + 1 - arr.shape[3] - left)
    padded = pad_nchw(arr, (top, left, below, beyond), lowest)
    out = None
    for i in range(kh):
        for j in range(kw):
            view = tap(padded, i, j, (sh, sw), (dh, dw), (oh, ow))
            out = view.copy() if out is None else np.maximum(out, view, out=out)
    empty = 0 if not floats else -np.inf
    out[:, :, ~_covered(oh, sh, top, dh, arr.shape[2], kh)] = empty
    out[:, :, :, ~_covered(ow, sw, left, dw, arr.shape[3], kw)] = empty
    return out


def avg_pool2d(x: np.ndarray, kernel: int | tuple[int, int], *, stride=None, padding=0,
               dilation=1, ceil_mode: bool = False, count_include_pad: bool = False,
               rounding: str | Rounding = "nearest_away", rng: np.random.Generator | None = None,
               divisor_shift: int = 0) -> np.ndarray:  # fmt: skip
    """Exact window sum divided by the tap count, rounded as `rounding` says; int64 result.

    `divisor_shift` s divides by count·2^s in the same single rounding: the window mean of codes
    at fractional length f, written at the coarser fractional length f − s, rounded once."""
    arr, (kh, kw, sh, sw, dh, dw, top, left, bottom, right, oh, ow) = _pool_args(
        x, kernel, stride, padding, dilation, ceil_mode)
    mode = as_rounding(rounding)
    if isinstance(divisor_shift, bool) or not isinstance(divisor_shift, (int, np.integer)) \
            or divisor_shift < 0 or (kh * kw) << int(divisor_shift) >= 1 << 62:
        raise RsimError(f"divisor_shift: must be an integer >= 0 with {kh}x{kw}·2^shift below "
                        f"2^62, got {divisor_shift!r}")
    out = np.empty((arr.shape[0], arr.shape[1], oh, ow), np.int64)
    u = np.zeros(1)
    if mode is Rounding.STOCHASTIC:
        if not isinstance(rng, np.random.Generator):
            raise RsimError("rng: rounding=stochastic needs a numpy.random.Generator")
        u = rng.random(out.size)
    _avg_pool(np.ascontiguousarray(arr), kh, kw, sh, sw, dh, dw, top, left, bottom, right, oh,
              ow, bool(count_include_pad), int(divisor_shift), mode.code, u, out)  # fmt: skip
    return out
