"""Binary element-wise arithmetic (add, sub, mul, div) with numpy/ONNX broadcasting.

A layer has one or two activation inputs; a constant operand lives in params `constant`, with
attrs `constant_first` (bool: the constant is the left operand, which matters for sub and div).
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, register


def binary_operands(items, attrs, params):
    """The (left, right) operands of a binary layer, with its constant put in place."""
    if "constant" not in params:
        return tuple(items)
    const = params["constant"]
    return (const, items[0]) if attrs["constant_first"] else (items[0], const)


def _broadcast_shape(shapes, attrs, params):
    if "constant" in params:
        shapes = [shapes[0], params["constant"].shape]
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def _binary(ufunc):
    def forward(arrays, attrs, params):
        return ufunc(*binary_operands(arrays, attrs, params))

    return forward


for _name, _ufunc in [
    ("add", np.add),
    ("sub", np.subtract),
    ("mul", np.multiply),
    ("div", np.divide),
]:
    register(OpSpec(_name, _binary(_ufunc), _broadcast_shape))
