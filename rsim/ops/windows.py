"""Sliding-window helpers shared by convolution and pooling: padding and im2col gathering.

Pads are (top, left, bottom, right), strides and dilations (vertical, horizontal), all on NCHW
arrays.
"""

from __future__ import annotations

import math

import numpy as np


def pad_nchw(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """x padded on its two spatial axes with `value` (returns x itself when no padding)."""
    top, left, bottom, right = pads
    if not (top or left or bottom or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def window_out_size(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    pad_begin: int,
    pad_end: int,
    ceil_mode: bool = False,
) -> int:
    """Number of window positions along one axis (ONNX Conv/Pool rule, ceil_mode as in ONNX >= 19:
    a last window that would start inside the end padding is dropped)."""
    span = dilation * (kernel - 1) + 1
    room = size + pad_begin + pad_end - span
    if ceil_mode:
        out = math.ceil(room / stride) + 1
        if (out - 1) * stride >= size + pad_begin:
            out -= 1
    else:
        out = room // stride + 1
    return max(out, 0)


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
