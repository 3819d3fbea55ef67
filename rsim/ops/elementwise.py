"""Binary element-wise arithmetic (add, sub, mul, div) with numpy/ONNX broadcasting.

A layer has one or two activation inputs; a constant operand lives in params `constant`, with
attrs `constant_first` (bool: the constant is the left operand, which matters for sub and div).
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, operands, register


def _broadcast_shape(shapes, attrs, params):
    if "constant" in params:
        shapes = [shapes[0], params["constant"].shape]
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def _binary(ufunc):
    def forward(arrays, attrs, params):
        return ufunc(*operands(arrays, attrs, params))

    return forward


for _name, _ufunc in [
    ("add", np.add),
    ("sub", np.subtract),
    ("mul", np.multiply),
    ("div", np.divide),
]:
    register(OpSpec(_name, _binary(_ufunc), _broadcast_shape))
