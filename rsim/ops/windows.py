"""Sliding-window helpers of the float ops: output sizes here, padding and tap views from
`kernels.fconv` (which the float convolution shares with the exact integer fast path).

Pads are (top, left, bottom, right), strides and dilations (vertical, horizontal), all on NCHW
arrays.
"""

from __future__ import annotations

import math

from kernels.fconv import pad_nchw, tap

__all__ = ["pad_nchw", "tap", "window_out_size"]


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
