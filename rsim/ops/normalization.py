"""Normalising ops in float: batchnorm (as a per-channel affine), LRN across channels, softmax.

batchnorm params: `scale` and `shift` (C,), y = x * scale + shift on axis 1 (the frontend folds
mean, variance, epsilon, gamma and beta into these in float64). lrn attrs: `size`, `alpha`,
`beta`, `bias` (ONNX/Caffe ACROSS_CHANNELS: y = x / (bias + alpha/size * sum of squares)^beta).
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


def _lrn(arrays, attrs, params):
    x = arrays[0]
    size = attrs["size"]
    sq = np.square(x)
    padded = np.zeros((x.shape[0], x.shape[1] + size - 1) + x.shape[2:], dtype=x.dtype)
    before = (size - 1) // 2
    padded[:, before : before + x.shape[1]] = sq
    total = np.zeros_like(x)
    for k in range(size):
        total += padded[:, k : k + x.shape[1]]
    t = x.dtype.type
    return x / (t(attrs["bias"]) + t(attrs["alpha"] / size) * total) ** t(attrs["beta"])


def _softmax(arrays, attrs, params):
    x = arrays[0]
    axes = attrs["axes"]
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


register(OpSpec("batchnorm", _batchnorm, _batchnorm_shape))
register(OpSpec("lrn", _lrn, same_shape))
register(OpSpec("softmax", _softmax, same_shape))
