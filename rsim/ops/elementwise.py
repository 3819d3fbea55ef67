"""Element-wise arithmetic with numpy/ONNX broadcasting: binary add, sub, mul, div, pow, and
the variadic max, min, sum, mean.

A layer has one or two activation inputs; a constant operand lives in params `constant`, with
attrs `constant_first` (bool: the constant is the left operand, which matters for sub and div).
On codes, add/sub of two activations aligns the operands exactly and rounds once to the output
format; with a constant operand, and for mul/div/pow, the layer is float-emulated. max/min of
one activation and a constant keep its format (the constant rounded onto its grid); of several
activations, and sum/mean of activations, compare or add exactly on the finest grid and round
once into the output format (mean by one rounded division by the operand count).
"""

from __future__ import annotations

import numpy as np

from kernels.elementwise import add_aligned
from rsim.ops.codes import aligned, constant_codes, mean_output
from rsim.ops.registry import OpSpec, operands, register
from rsim.quant.tensor import Outcome


def _two_activations(attrs, params, n_inputs) -> bool:
    return n_inputs == 2 and "constant" not in params


def _add_integer(quant, inputs, rng, negate=False):
    a, b = inputs
    b_data = -b.data.astype(np.int64) if negate else b.data
    total = add_aligned(a.data, a.fmt.fl, b_data, b.fmt.fl, out_frac=quant.out_fmt.fl,
                        out_bits=64, rounding=quant.rounding, rng=rng)
    return quant.saturated_codes(total)


def _sub_integer(quant, inputs, rng):
    return _add_integer(quant, inputs, rng, negate=True)


def _broadcast_shape(shapes, attrs, params):
    if "constant" in params:
        shapes = [shapes[0], params["constant"].shape]
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def _binary(ufunc):
    def forward(arrays, attrs, params):
        return ufunc(*operands(arrays, attrs, params))

    return forward


for _name, _ufunc, _integer in [
    ("add", np.add, _add_integer),
    ("sub", np.subtract, _sub_integer),
    ("mul", np.multiply, None),
    ("div", np.divide, None),
]:
    register(OpSpec(_name, _binary(_ufunc), _broadcast_shape, integer=_integer,
                    integer_applies=_two_activations, float_unit=_integer is not None))


register(OpSpec("pow", _binary(np.power), _broadcast_shape))


# ----- variadic max / min / sum / mean ---------------------------------------------------------
# A layer reads its activation operands; the constant operands are combined into params
# `constant` (their max, min or sum); mean's attrs `count` is the number of operands in all.

_VARIADIC = {"max": np.maximum, "min": np.minimum, "sum": np.add, "mean": np.add}


def _variadic_shape(shapes, attrs, params):
    shapes = [tuple(s) for s in shapes]
    if "constant" in params:
        shapes.append(params["constant"].shape)
    return tuple(np.broadcast_shapes(*shapes))


def _variadic(name):
    ufunc = _VARIADIC[name]

    def forward(arrays, attrs, params):
        operands = list(arrays) + ([params["constant"]] if "constant" in params else [])
        result = operands[0]
        for operand in operands[1:]:
            result = ufunc(result, operand)
        if name == "mean":
            result = result / result.dtype.type(attrs["count"])
        return np.broadcast_to(result, _variadic_shape([a.shape for a in arrays], attrs,
                                                       params)).copy()

    return forward


def _one_activation(attrs, params, n_inputs) -> bool:
    return n_inputs == 1


def _activations_only(attrs, params, n_inputs) -> bool:
    return "constant" not in params


def _lone_activation(attrs, params, n_inputs) -> bool:
    return n_inputs == 1 and "constant" not in params


def _one_activation_or_no_constant(attrs, params, n_inputs) -> bool:
    return n_inputs == 1 or "constant" not in params


def _compare_integer(ufunc):
    """max/min on codes: one activation against a constant rounded onto its grid (the output
    keeps the format: rounding is monotone, so this is the exact result rounded), or several
    activations compared exactly on their finest grid and rounded once into the output."""
    def model(quant, inputs, rng):
        if len(inputs) == 1:
            x = inputs[0]
            codes = x.data.astype(np.int64)
            if "constant" in quant.layer.params:
                codes = ufunc(codes, constant_codes(quant.layer.params["constant"], x.fmt,
                                                    quant.rounding, rng))
            return quant.saturated_codes(codes)
        codes, fl = aligned(inputs)
        result = codes[0]
        for operand in codes[1:]:
            result = ufunc(result, operand)
        return Outcome(*quant.requantize(result, fl, rng))

    return model


def _sum_integer(quant, inputs, rng):
    """sum / mean of activations: exact on their finest grid, one rounding into the output
    (mean: one rounded division by the operand count)."""
    codes, fl = aligned(inputs)
    total = codes[0]
    for operand in codes[1:]:
        total = total + operand
    if quant.layer.op == "mean":
        return mean_output(quant, total, fl, quant.layer.attrs["count"], rng)
    return Outcome(*quant.requantize(total, fl, rng))


for _name, _integer, _keeps, _applies in [
    ("max", _compare_integer(np.maximum), _one_activation, _one_activation_or_no_constant),
    ("min", _compare_integer(np.minimum), _one_activation, _one_activation_or_no_constant),
    ("sum", _sum_integer, _lone_activation, _activations_only),
    ("mean", _sum_integer, _lone_activation, _activations_only),
]:
    register(OpSpec(_name, _variadic(_name), _variadic_shape, keeps_format=_keeps,
                    integer=_integer, integer_applies=_applies,
                    float_unit=_name in ("sum", "mean")))
