"""2-D convolution in floating point by BLAS (im2col / row-shifted / 1x1 GEMMs, batched,
grouped; depthwise by the Numba kernel of `kernels.fdepthwise`). The GEMM operands are gathered
straight from the unpadded input and one-sample GEMMs write straight into the output.

Shared by the float reference path (`rsim.ops.conv`) and the exact fast path of the integer
convolution (`kernels.conv`): on integer codes whose every partial sum is an integer of
magnitude <= 2^24, a float32 convolution is exact whatever order BLAS adds the products in.
Pads are (top, left, bottom, right), strides and dilations (vertical, horizontal), all on NCHW
arrays.
"""

from __future__ import annotations

import numpy as np

from kernels.fdepthwise import depthwise_conv2d_float, inside_range
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


def tap_window(
    dst: np.ndarray,
    src: np.ndarray,
    offsets: tuple[int, int],
    strides: tuple[int, int],
    pad_value: float,
) -> None:
    """dst[..., p, q] = src[..., p*sh + offsets[0], q*sw + offsets[1]] where that lies inside src,
    else pad_value: what one kernel tap sees of the padded input, written without ever padding
    the input (offsets are the tap's position minus the top / left pads)."""
    (sh, sw), (dy, dx) = strides, offsets
    r0, r1 = inside_range(dst.shape[-2], src.shape[-2], dy, sh)
    c0, c1 = inside_range(dst.shape[-1], src.shape[-1], dx, sw)
    if r0 or c0 or r1 < dst.shape[-2] or c1 < dst.shape[-1]:
        dst[..., :r0, :] = pad_value
        dst[..., r1:, :] = pad_value
        dst[..., r0:r1, :c0] = pad_value
        dst[..., r0:r1, c1:] = pad_value
    if r1 > r0 and c1 > c0:
        dst[..., r0:r1, c0:c1] = src[..., r0 * sh + dy : (r1 - 1) * sh + dy + 1 : sh,
                                     c0 * sw + dx : (c1 - 1) * sw + dx + 1 : sw]  # fmt: skip


def im2col(
    x: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    pad_value: float = 0.0,
) -> np.ndarray:
    """Patches of input x (N, C, H, W), padded by `pads` with `pad_value`, as a
    (C, kh, kw, N, Ho, Wo) array: reshaped to (C*kh*kw, N*Ho*Wo) it is the right operand of one
    large GEMM for the whole batch (one strided copy per kernel tap, no padded copy of x)."""
    n, c = x.shape[:2]
    kh, kw = kernel
    (dh, dw), (top, left) = dilations, pads[:2]
    cols = np.empty((c, kh, kw, n) + tuple(out_hw), dtype=x.dtype)
    by_channel = x.transpose(1, 0, 2, 3)
    for i in range(kh):
        for j in range(kw):
            tap_window(cols[:, i, j], by_channel, (i * dh - top, j * dw - left), strides,
                       pad_value)  # fmt: skip
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
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    out_hw = ((x.shape[2] + top + bottom - dh * (kh - 1) - 1) // sh + 1,
              (x.shape[3] + left + right - dw * (kw - 1) - 1) // sw + 1)  # fmt: skip
    per_group = out_ch // groups
    # Row-shifted GEMMs gather (kh-1)*kw taps per input element fewer than im2col but copy the
    # weights into kernel-row order on every call: worth it while that copy is the smaller.
    row_shifted = (sh == 1 and kh > 1 and in_per_group * kw >= 16
                   and per_group * kh < (kh - 1) * out_hw[0] * out_hw[1] * x.shape[0])
    if row_shifted:  # the weights of kernel row i as one (O, C*kw) matrix, arranged once per call
        gemm, weights = _gemm_row_shifted, np.ascontiguousarray(w.transpose(2, 0, 1, 3))
        weights = weights.reshape(kh, out_ch, in_per_group * kw)
    else:
        gemm, weights = _gemm_im2col, w.reshape(out_ch, in_per_group * kh * kw)
    # gather buffer bytes per sample: (C, kw, Ho + dh*(kh-1), Wo) rows or (C, kh, kw, Ho, Wo)
    taps = kw * (out_hw[0] + dh * (kh - 1)) if row_shifted else kh * kw * out_hw[0]
    per_sample = in_per_group * taps * out_hw[1] * x.dtype.itemsize
    chunk = max(1, _GATHER_BYTES // max(per_sample, 1))
    depth = in_per_group * kw * (1 if row_shifted else kh)
    macs_per_gemm = per_group * depth * min(chunk, x.shape[0]) * out_hw[0] * out_hw[1]
    y = np.empty((x.shape[0], out_ch) + out_hw, dtype=x.dtype)
    with blas_threads_for(macs_per_gemm):
        for g in range(groups):
            for first in range(0, x.shape[0], chunk):
                gemm(
                    x[first : first + chunk, g * in_per_group : (g + 1) * in_per_group],
                    weights[..., g * per_group : (g + 1) * per_group, :],
                    (kh, kw),
                    strides,
                    dilations,
                    pads,
                    pad_value,
                    y[first : first + chunk, g * per_group : (g + 1) * per_group],
                )
    return y


def _pointwise(x, w, strides, pads, groups, pad_value):
    """1x1 kernels: per sample and group, weight (Og, Cg) times the sample's (Cg, Ho*Wo) pixels,
    written straight into the NCHW output; with stride 1 and no padding the pixels are x itself
    (no copy in, no transpose out)."""
    (sh, sw), (top, left, bottom, right) = strides, pads
    out_hw = ((x.shape[2] + top + bottom - 1) // sh + 1, (x.shape[3] + left + right - 1) // sw + 1)
    n, out_ch, in_per_group = x.shape[0], w.shape[0], w.shape[1]
    pixels = np.ascontiguousarray(x)
    if strides != (1, 1) or any(pads):
        pixels = np.empty(x.shape[:2] + out_hw, dtype=x.dtype)
        tap_window(pixels, x, (-top, -left), strides, pad_value)
    pixels = pixels.reshape(n, in_per_group * groups, out_hw[0] * out_hw[1])
    per_group = out_ch // groups
    y = np.empty((n, out_ch, pixels.shape[2]), dtype=x.dtype)
    with blas_threads_for(per_group * in_per_group * pixels.shape[2]):
        for g in range(groups):
            np.matmul(w[g * per_group : (g + 1) * per_group].reshape(per_group, in_per_group),
                      pixels[:, g * in_per_group : (g + 1) * in_per_group],
                      out=y[:, g * per_group : (g + 1) * per_group])  # fmt: skip
    return y.reshape((n, out_ch) + out_hw)


def _gemm_im2col(x, weights, kernel, strides, dilations, pads, pad_value, out):
    """out (N, O, Ho, Wo) = weights (O, C*kh*kw) times all patches (C*kh*kw, N*Ho*Wo): one GEMM
    for the batch."""
    n, out_ch, ho, wo = out.shape
    cols = im2col(x, kernel, strides, dilations, pads, (ho, wo), pad_value)
    target = _single_sample_target(out)
    y = np.matmul(weights, cols.reshape(-1, n * ho * wo), out=target)
    if target is None:
        out[...] = y.reshape(out_ch, n, ho, wo).transpose(1, 0, 2, 3)


def _gemm_row_shifted(x, weights, kernel, strides, dilations, pads, pad_value, out):
    """For vertical stride 1: gather only the kw horizontal taps of the padded input, in
    (C, kw, Ho + dh*(kh-1), N, Wo) order, so the patches of kernel row i are a strided view of
    it (rows i*dh .. i*dh+Ho); kh GEMMs of depth C*kw (`weights[i]`, (O, C*kw)) then accumulate
    into out (N, O, Ho, Wo). kw/(kh*kw) of im2col's copying, same arithmetic."""
    n, in_ch = x.shape[:2]
    kh, kw = kernel
    out_ch, ho, wo = out.shape[1:]
    (dh, dw), (top, left) = dilations, pads[:2]
    rows = np.empty((in_ch, kw, ho + dh * (kh - 1), n, wo), dtype=x.dtype)
    by_channel = x.transpose(1, 0, 2, 3)
    for j in range(kw):
        tap_window(rows[:, j].transpose(0, 2, 1, 3), by_channel, (-top, j * dw - left),
                   strides, pad_value)  # fmt: skip
    target = _single_sample_target(out)
    y = None
    for i in range(kh):
        patches = rows[:, :, i * dh : i * dh + ho].reshape(in_ch * kw, ho * n * wo)
        part = np.matmul(weights[i], patches, out=target if y is None else None)
        y = part if y is None else np.add(y, part, out=y)
    if target is None:
        out[...] = y.reshape(out_ch, ho, n, wo).transpose(2, 0, 1, 3)


def _single_sample_target(out):
    """For a chunk of one sample, out (1, O, Ho, Wo) as the (O, Ho*Wo) matrix the GEMMs produce
    (a view: one sample's channel block is contiguous), so they write into it directly; None
    for several samples, whose GEMM layout interleaves them: one transposing copy stores it."""
    return out[0].reshape(out.shape[1], -1) if out.shape[0] == 1 else None
