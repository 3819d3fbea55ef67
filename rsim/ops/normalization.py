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

On fixed-point codes, softmax (over contiguous axes) and layernorm run on the integer-only
nonlinear unit when the datapath's `nonlinear` is `integer` (`kernels.int_softmax`,
`kernels.int_layernorm`: I-BERT's integer exponential and Newton square root, each exact to its
integer definition; layernorm's scale and bias as codes in the weight and bias formats); all the
others, and these with `nonlinear: float`, are float-emulated.
"""

from __future__ import annotations

import numpy as np

import kernels
from rsim.ops.codes import unit_output
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


def _contiguous_axes(attrs, params, n_inputs) -> bool:
    axes = sorted(attrs["axes"])
    return axes == list(range(axes[0], axes[-1] + 1))


def _softmax_integer(quant, inputs, rng):
    """The softmax unit on codes: the normalised axes merged into one (they are contiguous)."""
    x, fmt = inputs[0], quant.out_fmt
    axes = sorted(quant.layer.attrs["axes"])
    shape = x.data.shape
    merged = x.data.reshape(shape[:axes[0]] + (-1,) + shape[axes[-1] + 1:])

    def compute():
        result = kernels.int_softmax(merged, x.fmt.fl, axes[0], fmt.bits, fmt.fl,
                                     signed=fmt.signed, rounding=quant.rounding, rng=rng)
        return result._replace(codes=result.codes.reshape(shape),
                               saturated=result.saturated.reshape(shape))

    return unit_output(quant, compute)


register(OpSpec("batchnorm", _batchnorm, _batchnorm_shape))
register(OpSpec("lrn", _lrn, same_shape))
register(OpSpec("softmax", _softmax, same_shape, integer=_softmax_integer,
                integer_applies=_contiguous_axes, nonlinear_unit=True))


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
def _layernorm_integer(quant, inputs, rng):
    """The layernorm unit on codes: gamma and beta codes over the normalised axes (a missing
    bias is beta = 0)."""
    x, fmt, constants = inputs[0], quant.out_fmt, quant.constants
    axes = tuple(range(quant.layer.attrs["axis"], x.data.ndim))
    norm_shape = x.data.shape[axes[0]:]
    gamma = _over(constants.weights, norm_shape)
    beta, beta_fl = np.zeros(1, np.int64), 0
    if constants.bias is not None:
        beta, beta_fl = _over(constants.bias, norm_shape), constants.bias_fmt.fl
    return unit_output(quant, lambda: kernels.int_layernorm(
        x.data, x.fmt.fl, gamma, constants.weight_fl, beta, beta_fl, axes, fmt.bits, fmt.fl,
        eps=quant.layer.attrs["epsilon"], signed=fmt.signed, rounding=quant.rounding, rng=rng))


def _over(values: np.ndarray, norm_shape: tuple[int, ...]) -> np.ndarray:
    """A scale or shift over the normalised axes (broadcast to them), without the size-1 axes
    before them that ONNX allows."""
    return np.broadcast_to(values, norm_shape) if values.ndim <= len(norm_shape) else \
        np.broadcast_to(values.reshape(values.shape[-len(norm_shape):]), norm_shape)


register(OpSpec("layernorm", _layernorm, _scaled_shape, integer=_layernorm_integer,
                nonlinear_unit=True))
register(OpSpec("layernorm_stat", _layernorm_stat, _layernorm_stat_shape))
register(OpSpec("rmsnorm", _rmsnorm, _scaled_shape))
register(OpSpec("groupnorm", _groupnorm, _groupnorm_shape))
