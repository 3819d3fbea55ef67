"""2-D max and average pooling and global average and max pooling: float forward and
bit-accurate models.

On codes, max pooling (and global max pooling) keeps the input's format; average pooling sums
each window exactly and divides by the tap count with one rounding into the output grid (a finer grid scales the sums
up exactly, a coarser one multiplies the divisor by the power of two), then saturates.

Attributes (normalised by the frontends): `kernel` (kh, kw), `strides`, `dilations`, `pads`
(top, left, bottom, right), `ceil_mode` (bool); avgpool adds `count_include_pad` (bool: whether
explicit padding counts in the divisor; the extra cells a ceil-mode window hangs past the padding
never count).
"""

from __future__ import annotations

import numpy as np

from kernels.pool import avg_pool2d, max_pool2d
from rsim.ops.registry import OpSpec, always, register
from rsim.quant.tensor import Outcome, QTensor
from rsim.ops.windows import pad_nchw, tap, window_out_size


def pool_out_hw(in_shape, attrs) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ceil = attrs["ceil_mode"]
    return (
        window_out_size(in_shape[2], kh, sh, dh, top, bottom, ceil),
        window_out_size(in_shape[3], kw, sw, dw, left, right, ceil),
    )


def _pool_shape(shapes, attrs, params):
    (x,) = shapes
    if len(x) != 4:
        raise ValueError(f"pooling expects an NCHW input, got shape {x}")
    return tuple(x[:2]) + pool_out_hw(x, attrs)


def _overhang(in_shape, attrs, out_hw) -> tuple[int, int]:
    """Extra bottom/right cells a ceil-mode window reaches past the explicit padding."""
    extra = []
    for axis in (0, 1):
        span = attrs["dilations"][axis] * (attrs["kernel"][axis] - 1) + 1
        needed = (out_hw[axis] - 1) * attrs["strides"][axis] + span
        have = in_shape[2 + axis] + attrs["pads"][axis] + attrs["pads"][axis + 2]
        extra.append(max(needed - have, 0))
    return extra[0], extra[1]


def _windowed(x, attrs, fill, reduce):
    out_hw = pool_out_hw(x.shape, attrs)
    top, left, bottom, right = attrs["pads"]
    eh, ew = _overhang(x.shape, attrs, out_hw)
    xp = pad_nchw(x, (top, left, bottom + eh, right + ew), fill)
    kh, kw = attrs["kernel"]
    acc = None
    for i in range(kh):
        for j in range(kw):
            view = tap(xp, i, j, attrs["strides"], attrs["dilations"], out_hw)
            acc = view.copy() if acc is None else reduce(acc, view, out=acc)
    return acc


def _maxpool_forward(arrays, attrs, params):
    """`kernels.max_pool2d`: one compiled pass, NaN propagating, for floats as for codes."""
    return max_pool2d(arrays[0], attrs["kernel"], stride=attrs["strides"], padding=attrs["pads"],
                      dilation=attrs["dilations"], ceil_mode=attrs["ceil_mode"])


def _avgpool_forward(arrays, attrs, params):
    x = arrays[0]
    total = _windowed(x, attrs, 0.0, np.add)
    n, c, h, w = x.shape
    top, left, bottom, right = attrs["pads"]
    if attrs["count_include_pad"]:
        out_hw = total.shape[2:]
        eh, ew = _overhang(x.shape, attrs, out_hw)
        ones = np.ones((1, 1, h + top + bottom, w + left + right), dtype=x.dtype)
        ones = pad_nchw(ones, (0, 0, eh, ew), 0.0)
        count = np.zeros((1, 1) + tuple(out_hw), dtype=x.dtype)
        for i in range(attrs["kernel"][0]):
            for j in range(attrs["kernel"][1]):
                count += tap(ones, i, j, attrs["strides"], attrs["dilations"], out_hw)
    else:
        count = _windowed(np.ones((1, 1, h, w), dtype=x.dtype), attrs, 0.0, np.add)
    total /= count
    return total


def _global_avgpool_shape(shapes, attrs, params):
    (x,) = shapes
    if len(x) < 3:
        raise ValueError(f"global pooling expects N, C and spatial axes, got shape {x}")
    return tuple(x[:2]) + (1,) * (len(x) - 2)


def _global_avgpool_forward(arrays, attrs, params):
    x = arrays[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=x.dtype)


def _window(attrs) -> dict:
    return {"stride": attrs["strides"], "padding": attrs["pads"], "dilation": attrs["dilations"],
            "ceil_mode": attrs["ceil_mode"]}


def _maxpool_integer(quant, inputs, rng):
    x = inputs[0]
    attrs = quant.layer.attrs
    return Outcome(QTensor(max_pool2d(x.data, attrs["kernel"], **_window(attrs)), x.fmt))


def _average(quant, x: QTensor, rng, pool) -> Outcome:
    """Exact window sums, one rounded division into the output grid, saturated."""
    finer = quant.out_fmt.fl - x.fmt.fl
    codes = x.data.astype(np.int64) << max(finer, 0)
    return quant.saturated_codes(pool(codes, rounding=quant.rounding, rng=rng,
                                      divisor_shift=max(-finer, 0)))


def _avgpool_integer(quant, inputs, rng):
    attrs = quant.layer.attrs
    return _average(quant, inputs[0], rng, lambda codes, **divide: avg_pool2d(
        codes, attrs["kernel"], count_include_pad=attrs["count_include_pad"], **_window(attrs),
        **divide))


def _global_avgpool_integer(quant, inputs, rng):
    return _average(quant, inputs[0], rng, lambda codes, **divide: avg_pool2d(
        codes, codes.shape[2:], **divide))


register(OpSpec("maxpool", _maxpool_forward, _pool_shape, keeps_format=always, commutes=True,
                integer=_maxpool_integer))
register(OpSpec("avgpool", _avgpool_forward, _pool_shape, integer=_avgpool_integer,
                float_unit=True))
register(OpSpec("global_avgpool", _global_avgpool_forward, _global_avgpool_shape,
                integer=_global_avgpool_integer, float_unit=True))


def _global_maxpool_forward(arrays, attrs, params):
    x = arrays[0]
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def _global_maxpool_integer(quant, inputs, rng):
    x = inputs[0]
    return Outcome(QTensor(x.data.max(axis=tuple(range(2, x.data.ndim)), keepdims=True), x.fmt))


register(OpSpec("global_maxpool", _global_maxpool_forward, _global_avgpool_shape,
                keeps_format=always, commutes=True, integer=_global_maxpool_integer))
