"""Reductions over axes: reduce_sum, reduce_mean, reduce_max, argmax, and topk.

Attributes (normalised by the frontends, every axis non-negative): reduce_* `axes` (the tuple
of axes reduced) and `keepdims` (bool); argmax `axis`, `keepdims`, `select_last_index` (ties go
to the last index instead of the first); topk `k`, `axis`, `largest` (bool), `output`
("values" or "indices": a layer computes one of the two; ties keep the lower index first).

On codes, reduce_max and topk's values keep the input's format (selections); argmax and topk's
indices are integers (an index format); reduce_sum and reduce_mean sum the codes exactly and
round once into the output format (the mean by one rounded division by the element count).
"""

from __future__ import annotations

import math

import numpy as np

from rsim.ops.codes import mean_output
from rsim.ops.registry import OpSpec, always, register
from rsim.quant.tensor import Outcome, QTensor


def _reduce_shape(shapes, attrs, params):
    x, axes = tuple(shapes[0]), attrs["axes"]
    if attrs["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in axes)


def _reducer(function):
    def forward(arrays, attrs, params):
        x = arrays[0]
        return function(x, axis=attrs["axes"], keepdims=bool(attrs["keepdims"]))

    return forward


def _reduce_max_integer(quant, inputs, rng):
    x = inputs[0]
    attrs = quant.layer.attrs
    return Outcome(QTensor(np.max(x.data, axis=attrs["axes"], keepdims=attrs["keepdims"]),
                           x.fmt))


def _reduce_sum_integer(quant, inputs, rng):
    x = inputs[0]
    attrs = quant.layer.attrs
    total = np.sum(x.data.astype(np.int64), axis=attrs["axes"], keepdims=attrs["keepdims"])
    if quant.layer.op == "reduce_mean":
        count = math.prod(x.data.shape[a] for a in attrs["axes"])
        return mean_output(quant, total, x.fmt.fl, count, rng)
    return Outcome(*quant.requantize(total, x.fmt.fl, rng))


def _argmax(x: np.ndarray, attrs) -> np.ndarray:
    axis = attrs["axis"]
    if attrs["select_last_index"]:
        index = x.shape[axis] - 1 - np.argmax(np.flip(x, axis=axis), axis=axis)
    else:
        index = np.argmax(x, axis=axis)
    return np.expand_dims(index, axis) if attrs["keepdims"] else index


def _argmax_shape(shapes, attrs, params):
    x, axis = tuple(shapes[0]), attrs["axis"]
    if attrs["keepdims"]:
        return x[:axis] + (1,) + x[axis + 1:]
    return x[:axis] + x[axis + 1:]


def _argmax_integer(quant, inputs, rng):
    index = _argmax(inputs[0].data, quant.layer.attrs)
    return Outcome(QTensor(index.astype(quant.out_fmt.code_dtype), quant.out_fmt))


def _topk_order(x: np.ndarray, attrs) -> np.ndarray:
    """Indices of the k largest (smallest) elements along the axis, ties by lower index."""
    keys = -x.astype(np.float64) if attrs["largest"] else x
    order = np.argsort(keys, axis=attrs["axis"], kind="stable")
    return np.take(order, np.arange(attrs["k"]), axis=attrs["axis"])


def _topk(x: np.ndarray, attrs) -> np.ndarray:
    order = _topk_order(x, attrs)
    if attrs["output"] == "indices":
        return order
    return np.take_along_axis(x, order, axis=attrs["axis"])


def _topk_shape(shapes, attrs, params):
    x, axis = tuple(shapes[0]), attrs["axis"]
    if not 0 <= attrs["k"] <= x[axis]:
        raise ValueError(f"topk k = {attrs['k']} does not fit axis {axis} of shape {x}")
    return x[:axis] + (attrs["k"],) + x[axis + 1:]


def _topk_integer(quant, inputs, rng):
    x = inputs[0]
    result = _topk(x.data, quant.layer.attrs)
    return Outcome(QTensor(result.astype(quant.out_fmt.code_dtype), quant.out_fmt))


def _indices(attrs, params, n_inputs) -> bool:
    return attrs["output"] == "indices"


def _values(attrs, params, n_inputs) -> bool:
    return attrs["output"] == "values"


register(OpSpec("reduce_sum", _reducer(np.sum), _reduce_shape, integer=_reduce_sum_integer,
                float_unit=True))
register(OpSpec("reduce_mean", _reducer(np.mean), _reduce_shape, integer=_reduce_sum_integer,
                float_unit=True))
register(OpSpec("reduce_max", _reducer(np.max), _reduce_shape, keeps_format=always,
                commutes=True, integer=_reduce_max_integer))
register(OpSpec("argmax", lambda arrays, attrs, params: _argmax(arrays[0], attrs), _argmax_shape,
                integer=_argmax_integer, index_output=always))
register(OpSpec("topk", lambda arrays, attrs, params: _topk(arrays[0], attrs), _topk_shape,
                keeps_format=_values, commutes=True, integer=_topk_integer,
                index_output=_indices))
