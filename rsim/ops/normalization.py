"""Normalising ops in float: batchnorm (as a per-channel affine), LRN across channels, softmax
and log_softmax, layer normalisation (layernorm, rmsnorm, and layernorm_stat for its mean and
inverse standard deviation outputs), group and instance normalisation (groupnorm).

batchnorm params: `scale` and `shift` (C,), y = x * scale + shift on axis 1 (the frontend folds
mean, variance, epsilon, gamma and beta into these in float64). lrn attrs: `size`, `alpha`,
`beta`, `bias` and `region`: "across_channels" (the default; ONNX LRN, Caffe ACROSS_CHANNELS:
y = x / (bias + alpha/size * the sum of x^2 over `size` neighbouring channels)^beta) or
"within_channel" (Caffe WITHIN_CHANNEL: y = x / (bias + alpha/size^2 * the sum of x^2 over a
size x size spatial window of the same channel, zero padded by (size-1)//2 before)^beta).
softmax and log_softmax attrs: `axes`, the tuple of axes normalised together (ONNX < 13
flattens every axis from `axis` on; >= 13 uses one axis).
layernorm and rmsnorm attrs: `axis` (the axes from it on are normalised together), `epsilon`;
params `scale` and (layernorm, optional) `bias`, broadcast over the normalised axes. layernorm:
y = (x - mean) / sqrt(var + epsilon) * scale + bias; rmsnorm: y = x / sqrt(mean(x^2) + epsilon)
* scale. layernorm_stat: attrs `axis`, `epsilon`, `stat` ("mean" or "inv_std_dev"), the
statistics with the normalised axes kept as size 1. groupnorm attrs: `groups`, `epsilon`;
params `scale`, `bias` (C,): each sample's channels split into `groups` groups normalised over
their channels and spatial axes together (InstanceNormalization is one group per channel).

All of them are float-emulated on the accelerator (integer kernels for them are separate work).
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


def _log_softmax(arrays, attrs, params):
    x = arrays[0]
    axes = attrs["axes"]
    shifted = x - x.max(axis=axes, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axes, keepdims=True))


def _moments(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (biased) variance over `axes`, kept as size-1 axes."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    return mean, (centred * centred).mean(axis=axes, keepdims=True)


def _normalised_axes(x: np.ndarray, attrs) -> tuple[int, ...]:
    return tuple(range(attrs["axis"], x.ndim))


def _layernorm(arrays, attrs, params):
    x = arrays[0]
    mean, var = _moments(x, _normalised_axes(x, attrs))
    y = (x - mean) / np.sqrt(var + x.dtype.type(attrs["epsilon"])) * params["scale"]
    return y + params["bias"] if "bias" in params else y


def _layernorm_stat(arrays, attrs, params):
    x = arrays[0]
    mean, var = _moments(x, _normalised_axes(x, attrs))
    if attrs["stat"] == "mean":
        return mean
    return x.dtype.type(1) / np.sqrt(var + x.dtype.type(attrs["epsilon"]))


def _layernorm_stat_shape(shapes, attrs, params):
    return tuple(d if i < attrs["axis"] else 1 for i, d in enumerate(shapes[0]))


def _rmsnorm(arrays, attrs, params):
    x = arrays[0]
    square = (x * x).mean(axis=_normalised_axes(x, attrs), keepdims=True)
    return x / np.sqrt(square + x.dtype.type(attrs["epsilon"])) * params["scale"]


def _scaled_shape(shapes, attrs, params):
    x = tuple(shapes[0])
    for name in ("scale", "bias"):
        if name in params and np.broadcast_shapes(x, params[name].shape) != x:
            raise ValueError(f"{name} of shape {params[name].shape} does not broadcast over "
                             f"the normalised axes of {x}")
    return x


def _groupnorm(arrays, attrs, params):
    x = arrays[0]
    n, c = x.shape[:2]
    groups = attrs["groups"]
    grouped = x.reshape(n, groups, -1)
    mean, var = _moments(grouped, (2,))
    y = ((grouped - mean) / np.sqrt(var + x.dtype.type(attrs["epsilon"]))).reshape(x.shape)
    return y * _channel_view(params["scale"], x.ndim) + _channel_view(params["bias"], x.ndim)


def _groupnorm_shape(shapes, attrs, params):
    x = tuple(shapes[0])
    if len(x) < 2 or x[1] % attrs["groups"] or params["scale"].shape != (x[1],):
        raise ValueError(f"groupnorm of {attrs['groups']} groups with {params['scale'].shape} "
                         f"scales does not fit input {x}")
    return x


register(OpSpec("log_softmax", _log_softmax, same_shape))
register(OpSpec("layernorm", _layernorm, _scaled_shape))
register(OpSpec("layernorm_stat", _layernorm_stat, _layernorm_stat_shape))
register(OpSpec("rmsnorm", _rmsnorm, _scaled_shape))
register(OpSpec("groupnorm", _groupnorm, _groupnorm_shape))
