"""Element-wise nonlinearities in float, with the ONNX definitions.

Attributes: clip `min`/`max` (floats, -inf/inf when absent; ReLU6 is clip 0..6), leaky_relu
`alpha`, hard_sigmoid `alpha`/`beta` (y = max(0, min(1, alpha*x + beta))). hard_swish is
x * hard_sigmoid(x) with alpha = 1/6, beta = 0.5.
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, register, same_shape


def _relu(arrays, attrs, params):
    return np.maximum(arrays[0], 0)


def _clip(arrays, attrs, params):
    x = arrays[0]
    return np.minimum(np.maximum(x, x.dtype.type(attrs["min"])), x.dtype.type(attrs["max"]))


def _leaky_relu(arrays, attrs, params):
    x = arrays[0]
    return np.where(x < 0, x * x.dtype.type(attrs["alpha"]), x)


def _sigmoid(arrays, attrs, params):
    x = arrays[0]
    # exp of a non-positive argument only, so neither branch overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _tanh(arrays, attrs, params):
    return np.tanh(arrays[0])


def hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    t = x.dtype.type
    return np.clip(x * t(alpha) + t(beta), t(0), t(1))


def _hard_sigmoid(arrays, attrs, params):
    return hard_sigmoid(arrays[0], attrs["alpha"], attrs["beta"])


def _hard_swish(arrays, attrs, params):
    x = arrays[0]
    return x * hard_sigmoid(x, 1 / 6, 0.5)


for _name, _fn in [
    ("relu", _relu),
    ("clip", _clip),
    ("leaky_relu", _leaky_relu),
    ("sigmoid", _sigmoid),
    ("tanh", _tanh),
    ("hard_sigmoid", _hard_sigmoid),
    ("hard_swish", _hard_swish),
]:
    register(OpSpec(_name, _fn, same_shape))
