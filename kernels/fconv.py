"""2-D convolution in floating point by BLAS (im2col / row-shifted GEMMs, batched, grouped).

Shared by the float reference path (`rsim.ops.conv`) and the exact fast path of the integer
convolution (`kernels.conv`): on integer codes whose every partial sum is an integer of
magnitude <= 2^24, a float32 convolution is exact whatever order BLAS adds the products in.
Pads are (top, left, bottom, right), strides and dilations (vertical, horizontal), all on NCHW
arrays.
"""

from __future__ import annotations

import numpy as np

from kernels.fdepthwise import depthwise_conv2d_float
from kernels.threads import blas_threads_for

_GATHER_BYTES = 1 << 21  # the batch runs in chunks whose gathered patches stay cache-sized


def pad_nchw(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """x padded on its two spatial axes with `value` (returns x itself when no padding)."""
    top, left, bottom, right = pads
    if not (top or left or bottom or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def tap(
    xp: np.ndarray,
    i: int,
    j: int,
    strides: tuple[int, int],
    dilations: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """The strided view of padded input `xp` that kernel tap (i, j) sees for every output pixel."""
    (sh, sw), (dh, dw), (ho, wo) = strides, dilations, out_hw
    return xp[
        :, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw
    ]


def im2col(
    xp: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Patches of padded input `xp` (N, C, H, W) as a (C, kh, kw, N, Ho, Wo) array: reshaped to
    (C*kh*kw, N*Ho*Wo) it is the right operand of one large GEMM for the whole batch (one strided
    copy per kernel tap)."""
    n, c = xp.shape[:2]
    kh, kw = kernel
    cols = np.empty((c, kh, kw, n) + tuple(out_hw), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = tap(xp, i, j, strides, dilations, out_hw).transpose(1, 0, 2, 3)
    return cols


def conv2d_float(
    x: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    groups: int,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Convolution of NCHW x with OIHW w (no bias) in x's float dtype, (N, O, OH, OW).

    Per group, GEMMs over chunks of the batch (see `_gemm_im2col`, `_gemm_row_shifted`); 1x1
    kernels a GEMM per sample straight into the output (`_pointwise`); depthwise convs take
    `kernels.fdepthwise` instead (a Numba loop, no GEMM). Every output is a sum of its products
    (no fast-convolution transform), so integer-valued data within the float type's exact
    range gives the exact result.
    """
    out_ch, in_per_group, kh, kw = w.shape
    if in_per_group == 1 and groups > 1:
        return depthwise_conv2d_float(x, w.astype(x.dtype, copy=False), strides, pads, dilations,
                                      pad_value)  # fmt: skip
    if (kh, kw) == (1, 1):
        return _pointwise(x, w, strides, pads, groups, pad_value)
    (sh, sw), (dh, dw) = strides, dilations
    xp = pad_nchw(x, pads, pad_value)
    out_hw = ((xp.shape[2] - dh * (kh - 1) - 1) // sh + 1,
              (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1)  # fmt: skip
    row_shifted = sh == 1 and kh > 1 and in_per_group * kw >= 16
    if row_shifted:  # the weights of kernel row i as one (O, C*kw) matrix, arranged once per call
        gemm, weights = _gemm_row_shifted, np.ascontiguousarray(w.transpose(2, 0, 1, 3))
        weights = weights.reshape(kh, out_ch, in_per_group * kw)
    else:
        gemm, weights = _gemm_im2col, w.reshape(out_ch, in_per_group * kh * kw)
    # gather buffer bytes per sample: (C, kw, Hp, Wo) rows or (C, kh, kw, Ho, Wo) patches
    taps = kw * xp.shape[2] if row_shifted else kh * kw * out_hw[0]
    per_sample = in_per_group * taps * out_hw[1] * x.dtype.itemsize
    chunk = max(1, _GATHER_BYTES // max(per_sample, 1))
    per_group = out_ch // groups
    depth = in_per_group * kw * (1 if row_shifted else kh)
    macs_per_gemm = per_group * depth * min(chunk, x.shape[0]) * out_hw[0] * out_hw[1]
    y = np.empty((x.shape[0], out_ch) + out_hw, dtype=x.dtype)
    with blas_threads_for(macs_per_gemm):
        for g in range(groups):
            for first in range(0, x.shape[0], chunk):
                y[first : first + chunk, g * per_group : (g + 1) * per_group] = gemm(
                    xp[first : first + chunk, g * in_per_group : (g + 1) * in_per_group],
                    weights[..., g * per_group : (g + 1) * per_group, :],
                    (kh, kw),
                    strides,
                    dilations,
                    out_hw,
                )
    return y


def _pointwise(x, w, strides, pads, groups, pad_value):
    """1x1 kernels: per sample and group, weight (Og, Cg) times the sample's (Cg, Ho*Wo) pixels,
    written straight into the NCHW output; with stride 1 and no padding the pixels are x itself
    (no copy in, no transpose out)."""
    xp = pad_nchw(x, pads, pad_value)
    out_hw = ((xp.shape[2] - 1) // strides[0] + 1, (xp.shape[3] - 1) // strides[1] + 1)
    n, out_ch, in_per_group = x.shape[0], w.shape[0], w.shape[1]
    pixels = np.ascontiguousarray(tap(xp, 0, 0, strides, (1, 1), out_hw))
    pixels = pixels.reshape(n, in_per_group * groups, out_hw[0] * out_hw[1])
    per_group = out_ch // groups
    y = np.empty((n, out_ch, pixels.shape[2]), dtype=x.dtype)
    with blas_threads_for(per_group * in_per_group * pixels.shape[2]):
        for g in range(groups):
            np.matmul(w[g * per_group : (g + 1) * per_group].reshape(per_group, in_per_group),
                      pixels[:, g * in_per_group : (g + 1) * in_per_group],
                      out=y[:, g * per_group : (g + 1) * per_group])  # fmt: skip
    return y.reshape((n, out_ch) + out_hw)


def _gemm_im2col(xp, weights, kernel, strides, dilations, out_hw):
    """weights (O, C*kh*kw) times all patches (C*kh*kw, N*Ho*Wo): one GEMM for the batch."""
    n = xp.shape[0]
    ho, wo = out_hw
    cols = im2col(xp, kernel, strides, dilations, out_hw).reshape(-1, n * ho * wo)
    y = np.matmul(weights, cols)
    return y.reshape(-1, n, ho, wo).transpose(1, 0, 2, 3)


def _gemm_row_shifted(xp, weights, kernel, strides, dilations, out_hw):
    """For vertical stride 1: gather only the kw horizontal taps, in (C, kw, H, N, Wo) order, so
    the patches of kernel row i are a strided view of it (rows i*dh .. i*dh+Ho); kh GEMMs of
    depth C*kw (`weights[i]`, (O, C*kw)) then accumulate. kw/(kh*kw) of im2col's copying, same
    arithmetic."""
    n, in_ch, hp, _ = xp.shape
    kh, kw = kernel
    out_ch = weights.shape[1]
    ho, wo = out_hw
    sw, (dh, dw) = strides[1], dilations
    rows = np.empty((in_ch, kw, hp, n, wo), dtype=xp.dtype)
    by_row = xp.transpose(1, 2, 0, 3)
    for j in range(kw):
        rows[:, j] = by_row[:, :, :, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
    y = None
    for i in range(kh):
        patches = rows[:, :, i * dh : i * dh + ho].reshape(in_ch * kw, ho * n * wo)
        part = np.matmul(weights[i], patches)
        y = part if y is None else np.add(y, part, out=y)
    return y.reshape(out_ch, ho, n, wo).transpose(2, 0, 1, 3)
