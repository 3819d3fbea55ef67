"""Element-wise nonlinearities, with the ONNX definitions.

Attributes: clip `min`/`max` (floats, -inf/inf when absent; ReLU6 is clip 0..6), leaky_relu
`alpha`, hard_sigmoid `alpha`/`beta` (y = max(0, min(1, alpha*x + beta))). hard_swish is
x * hard_sigmoid(x) with alpha = 1/6, beta = 0.5.

On codes, relu and clip keep the input's format. Clip's bounds are rounded inward onto that grid
(min up, max down), so the clipped codes never leave [min, max]: ReLU6 on a grid of step 4 stops
at 4.0. The other nonlinearities are float-emulated.
"""

from __future__ import annotations

import math

import numpy as np

from formats import FixedPoint
from rsim.ops.registry import OpSpec, always, register, same_shape
from rsim.quant.tensor import Outcome, QTensor


def _relu(arrays, attrs, params):
    return np.maximum(arrays[0], 0)


def _clip(arrays, attrs, params):
    x = arrays[0]  # one pass (ReLU6 is frequent); NaN propagates as in min(max(x, lo), hi)
    return np.clip(x, x.dtype.type(attrs["min"]), x.dtype.type(attrs["max"]))


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


def clip_codes(attrs: dict, fmt: FixedPoint) -> tuple[int, int]:
    """The code bounds of a clip layer in `fmt`: min rounded up, max rounded down, so the
    clipped codes never leave [min, max]."""
    lo = fmt.min_code if attrs["min"] is None or math.isinf(attrs["min"]) else \
        max(fmt.min_code, math.ceil(attrs["min"] * 2.0 ** fmt.fl))
    hi = fmt.max_code if attrs["max"] is None or math.isinf(attrs["max"]) else \
        min(fmt.max_code, math.floor(attrs["max"] * 2.0 ** fmt.fl))
    return lo, hi


def _relu_integer(quant, inputs, rng):
    x = inputs[0]
    return Outcome(QTensor(np.maximum(x.data, 0), x.fmt))


def _clip_integer(quant, inputs, rng):
    x = inputs[0]
    return Outcome(QTensor(np.clip(x.data, *clip_codes(quant.layer.attrs, x.fmt)), x.fmt))


register(OpSpec("relu", _relu, same_shape, keeps_format=always, commutes=True,
                integer=_relu_integer))
register(OpSpec("clip", _clip, same_shape, keeps_format=always, integer=_clip_integer))
for _name, _fn in [
    ("leaky_relu", _leaky_relu),
    ("sigmoid", _sigmoid),
    ("tanh", _tanh),
    ("hard_sigmoid", _hard_sigmoid),
    ("hard_swish", _hard_swish),
]:
    register(OpSpec(_name, _fn, same_shape))
