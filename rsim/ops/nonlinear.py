"""Element-wise functions beyond the activations of `activation.py`, with the ONNX definitions:
erf, gelu, exp, log, sqrt, reciprocal, neg, abs, sign, floor, ceil, round, softplus, softsign,
mish, elu, selu, celu, thresholded_relu, and prelu (a slope per element, broadcast).

Attributes: gelu `approximate` ("none": x·Φ(x) by erf, "tanh": the tanh approximation); elu
and celu `alpha`; selu `alpha`, `gamma`; thresholded_relu `alpha` (x where x > alpha, else 0).
prelu's slope is params `slope` (a constant broadcast to x) or its second activation input.

On codes, neg and abs negate codes and floor/ceil/round round them to whole values, keeping the
input's format (saturating where -min_code has no code); thresholded_relu keeps or zeroes codes.
gelu (erf form) runs on the integer-only nonlinear unit when the datapath's `nonlinear` is
`integer` (`kernels.int_gelu`: I-BERT's erf polynomial, exact to its integer definition). The
other functions, and gelu with `nonlinear: float`, are float-emulated.
"""

from __future__ import annotations

import math

import numpy as np

import kernels
from kernels.fmath import erf
from rsim.ops.codes import unit_output
from rsim.ops.registry import OpSpec, always, register, same_shape
from rsim.quant.tensor import Outcome, QTensor


def _gelu(arrays, attrs, params):
    x = arrays[0]
    t = x.dtype.type
    if attrs["approximate"] == "tanh":
        inner = t(math.sqrt(2 / math.pi)) * (x + t(0.044715) * x * x * x)
        return t(0.5) * x * (t(1) + np.tanh(inner))
    return t(0.5) * x * (t(1) + erf(x * t(1 / math.sqrt(2))))


def _erf_form(attrs, params, n_inputs) -> bool:
    return attrs["approximate"] == "none"


def _gelu_integer(quant, inputs, rng):
    """The GELU unit on codes (I-BERT approximates the erf form; the tanh form stays float)."""
    x, fmt = inputs[0], quant.out_fmt
    return unit_output(quant, lambda: kernels.int_gelu(
        x.data, x.fmt.fl, fmt.bits, fmt.fl, signed=fmt.signed, rounding=quant.rounding, rng=rng))


def _softplus(x):
    return np.logaddexp(x.dtype.type(0), x)


def _elu(x, alpha):
    t = x.dtype.type
    return np.where(x > 0, x, t(alpha) * np.expm1(np.minimum(x, t(0))))


def _celu(arrays, attrs, params):
    x = arrays[0]
    t = x.dtype.type
    alpha = t(attrs["alpha"])
    return np.maximum(x, t(0)) + np.minimum(t(0), alpha * np.expm1(np.minimum(x, t(0)) / alpha))


def _selu(arrays, attrs, params):
    x = arrays[0]
    t = x.dtype.type
    return t(attrs["gamma"]) * _elu(x, attrs["alpha"])


def _prelu(arrays, attrs, params):
    x = arrays[0]
    slope = arrays[1] if len(arrays) > 1 else params["slope"]
    return np.where(x < 0, x * slope, x)


def _prelu_shape(shapes, attrs, params):
    slope = tuple(shapes[1]) if len(shapes) > 1 else params["slope"].shape
    return tuple(np.broadcast_shapes(tuple(shapes[0]), slope))


def _unary(function):
    return lambda arrays, attrs, params: function(arrays[0])


def _code_rounding(step_codes, codes, how):
    """Codes rounded to a multiple of `step_codes` (the code of 1.0): floor, ceil or to nearest
    with ties to even (ONNX Round)."""
    if step_codes == 1:
        return codes
    floor = codes // step_codes
    if how == "floor":
        return floor * step_codes
    if how == "ceil":
        return -((-codes) // step_codes) * step_codes
    rest = codes - floor * step_codes
    twice = 2 * rest
    up = (twice > step_codes) | ((twice == step_codes) & (floor % 2 == 1))
    return (floor + up) * step_codes


def _rounding_integer(how):
    def model(quant, inputs, rng):
        x = inputs[0]
        codes = x.data.astype(np.int64)
        if x.fmt.fl > 0:
            codes = _code_rounding(1 << x.fmt.fl, codes, how)
        return quant.saturated_codes(codes)

    return model


def _neg_integer(quant, inputs, rng):
    return quant.saturated_codes(-inputs[0].data.astype(np.int64))


def _abs_integer(quant, inputs, rng):
    return quant.saturated_codes(np.abs(inputs[0].data.astype(np.int64)))


def _thresholded_relu_integer(quant, inputs, rng):
    """x > alpha on codes: alpha·2^fl is exact in float64, so the comparison is too."""
    x = inputs[0]
    limit = quant.layer.attrs["alpha"] * 2.0 ** x.fmt.fl
    return Outcome(QTensor(np.where(x.data > limit, x.data, 0).astype(x.data.dtype), x.fmt))


def _thresholded_relu(arrays, attrs, params):
    x = arrays[0]
    return np.where(x > x.dtype.type(attrs["alpha"]), x, x.dtype.type(0))


for _name, _fn in [
    ("erf", _unary(erf)),
    ("exp", _unary(np.exp)),
    ("log", _unary(np.log)),
    ("sqrt", _unary(np.sqrt)),
    ("reciprocal", _unary(np.reciprocal)),
    ("sign", _unary(np.sign)),
    ("softplus", _unary(_softplus)),
    ("softsign", _unary(lambda x: x / (x.dtype.type(1) + np.abs(x)))),
    ("mish", _unary(lambda x: x * np.tanh(_softplus(x)))),
    ("elu", lambda arrays, attrs, params: _elu(arrays[0], attrs["alpha"])),
    ("selu", _selu),
    ("celu", _celu),
]:
    register(OpSpec(_name, _fn, same_shape))
for _name, _fn, _integer in [
    ("neg", _unary(np.negative), _neg_integer),
    ("abs", _unary(np.abs), _abs_integer),
    ("floor", _unary(np.floor), _rounding_integer("floor")),
    ("ceil", _unary(np.ceil), _rounding_integer("ceil")),
    ("round", _unary(np.round), _rounding_integer("round")),
]:
    register(OpSpec(_name, _fn, same_shape, keeps_format=always, integer=_integer))
register(OpSpec("gelu", _gelu, same_shape, integer=_gelu_integer, integer_applies=_erf_form,
                nonlinear_unit=True))
register(OpSpec("thresholded_relu", _thresholded_relu, same_shape, keeps_format=always,
                integer=_thresholded_relu_integer))
register(OpSpec("prelu", _prelu, _prelu_shape))
