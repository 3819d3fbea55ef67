"""Normalising ops in float: batchnorm (as a per-channel affine), LRN across channels, softmax.

batchnorm params: `scale` and `shift` (C,), y = x * scale + shift on axis 1 (the frontend folds
mean, variance, epsilon, gamma and beta into these in float64). lrn attrs: `size`, `alpha`,
`beta`, `bias` and `region`: "across_channels" (the default; ONNX LRN, Caffe ACROSS_CHANNELS:
y = x / (bias + alpha/size * the sum of x^2 over `size` neighbouring channels)^beta) or
"within_channel" (Caffe WITHIN_CHANNEL: y = x / (bias + alpha/size^2 * the sum of x^2 over a
size x size spatial window of the same channel, zero padded by (size-1)//2 before)^beta).
softmax attrs: `axes`, the tuple of axes normalised together (ONNX < 13 flattens every axis from
`axis` on; >= 13 uses one axis).
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, register, same_shape


def _channel_view(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batchnorm_shape(shapes, attrs, params):
    x = tuple(shapes[0])
    if len(x) < 2 or x[1] != params["scale"].shape[0]:
        raise ValueError(f"batchnorm has {params['scale'].shape[0]} channels; input shape is {x}")
    return x


def _batchnorm(arrays, attrs, params):
    x = arrays[0]
    return x * _channel_view(params["scale"], x.ndim) + _channel_view(params["shift"], x.ndim)


# the axes an LRN region sums squares over
LRN_AXES = {"across_channels": (1,), "within_channel": (2, 3)}


def _lrn(arrays, attrs, params):
    x = arrays[0]
    size = attrs["size"]
    before = (size - 1) // 2
    region = attrs.get("region", "across_channels")
    if region not in LRN_AXES:
        raise ValueError(f"lrn region {region!r} is not one of {list(LRN_AXES)}")
    axes = LRN_AXES[region]
    widths = [(0, 0)] * x.ndim
    for axis in axes:
        widths[axis] = (before, size - 1 - before)
    padded = np.pad(np.square(x), widths)
    total = np.zeros_like(x)
    for offsets in np.ndindex(*(size,) * len(axes)):
        window = [slice(None)] * x.ndim
        for axis, k in zip(axes, offsets, strict=True):
            window[axis] = slice(k, k + x.shape[axis])
        total += padded[tuple(window)]
    t = x.dtype.type
    alpha = attrs["alpha"] / size ** len(axes)
    return x / (t(attrs["bias"]) + t(alpha) * total) ** t(attrs["beta"])


def _softmax(arrays, attrs, params):
    x = arrays[0]
    axes = attrs["axes"]
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


register(OpSpec("batchnorm", _batchnorm, _batchnorm_shape))
register(OpSpec("lrn", _lrn, same_shape))
register(OpSpec("softmax", _softmax, same_shape))
