"""Ops that select or repeat elements: gather, slice, expand, tile.

Attributes (normalised by the frontends, axes non-negative): gather `axis` and `roles`
(`rsim.ops.registry.named_operands`: `data` and `indices`, each an activation or a constant
in params; negative indices count from the end); slice `slices`, one (axis, start, end, step)
per sliced axis with Python/ONNX slice semantics (out-of-range bounds clamp, so the same
attributes fit any batch); expand `shape` (numpy broadcasting of the input to it); tile
`repeats` (one per axis).

On codes, every one of them moves codes and keeps the input's format; a gather from a constant
table (an embedding: the indices are the activation) writes the selected rows rounded once into
the output format, which is where the quantized path of an integer-id input starts.
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, always, named_operands, register
from rsim.quant.tensor import Outcome, QTensor


def _as_indices(indices: np.ndarray) -> np.ndarray:
    return np.asarray(indices).astype(np.int64)


def _gather(arrays, attrs, params):
    ops = named_operands(arrays, attrs, params)
    return np.take(ops["data"], _as_indices(ops["indices"]), axis=attrs["axis"])


def _gather_shape(shapes, attrs, params):
    ops = {k: tuple(v.shape) if isinstance(v, np.ndarray) else tuple(v)
           for k, v in named_operands(shapes, attrs, params).items()}
    data, axis = ops["data"], attrs["axis"]
    return data[:axis] + ops["indices"] + data[axis + 1:]


def _data_is_activation(attrs, params, n_inputs) -> bool:
    return attrs["roles"][0] == "data"


def _gather_integer(quant, inputs, rng):
    attrs, params = quant.layer.attrs, quant.layer.params
    by_role = dict(zip(attrs["roles"], inputs, strict=True))
    indices = (np.rint(by_role["indices"].values()) if "indices" in by_role
               else params["indices"])
    if "data" in by_role:
        data = by_role["data"]
        return Outcome(QTensor(np.take(data.data, _as_indices(indices), axis=attrs["axis"]),
                               data.fmt))
    rows = np.take(params["data"].astype(np.float64), _as_indices(indices), axis=attrs["axis"])
    return quant.rounded_output(rows, rng)


def _slice_index(rank: int, attrs) -> tuple:
    index = [slice(None)] * rank
    for axis, start, end, step in attrs["slices"]:
        index[axis] = slice(start, end, step)
    return tuple(index)


def _slice(x: np.ndarray, attrs) -> np.ndarray:
    return np.ascontiguousarray(x[_slice_index(x.ndim, attrs)])


def _slice_shape(shapes, attrs, params):
    x = list(shapes[0])
    for axis, start, end, step in attrs["slices"]:
        x[axis] = len(range(*slice(start, end, step).indices(x[axis])))
    return tuple(x)


def _expand(x: np.ndarray, attrs) -> np.ndarray:
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(attrs["shape"]))).copy()


def _expand_shape(shapes, attrs, params):
    return tuple(np.broadcast_shapes(tuple(shapes[0]), tuple(attrs["shape"])))


def _tile(x: np.ndarray, attrs) -> np.ndarray:
    return np.tile(x, attrs["repeats"])


def _tile_shape(shapes, attrs, params):
    if len(attrs["repeats"]) != len(shapes[0]):
        raise ValueError(f"tile repeats {attrs['repeats']} do not match the rank of "
                         f"{tuple(shapes[0])}")
    return tuple(d * r for d, r in zip(shapes[0], attrs["repeats"], strict=True))


def _moving(function):
    """The float forward and the codes model of an op that moves elements of its one input."""
    def forward(arrays, attrs, params):
        return function(arrays[0], attrs)

    def integer(quant, inputs, rng):
        x = inputs[0]
        return Outcome(QTensor(function(x.data, quant.layer.attrs), x.fmt))

    return forward, integer


register(OpSpec("gather", _gather, _gather_shape, keeps_format=_data_is_activation,
                commutes=True, integer=_gather_integer))
for _name, _function, _shape in [("slice", _slice, _slice_shape),
                                 ("expand", _expand, _expand_shape),
                                 ("tile", _tile, _tile_shape)]:
    _forward, _integer = _moving(_function)
    register(OpSpec(_name, _forward, _shape, keeps_format=always, commutes=True,
                    integer=_integer))
