"""Binary element-wise arithmetic (add, sub, mul, div) with numpy/ONNX broadcasting.

A layer has one or two activation inputs; a constant operand lives in params `constant`, with
attrs `constant_first` (bool: the constant is the left operand, which matters for sub and div).
On codes, add/sub of two activations aligns the operands exactly and rounds once to the output
format; with a constant operand, and for mul/div, the layer is float-emulated.
"""

from __future__ import annotations

import numpy as np

from kernels.elementwise import add_aligned
from rsim.ops.registry import OpSpec, operands, register


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
