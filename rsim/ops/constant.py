"""Values that do not depend on the input's values: batch_constant and shape.

- `batch_constant`: params `value`, a constant whose leading axis is the batch, written at the
  batch of its one input (an activation that carries the batch; its values are not read). A
  value with leading axis 1 is repeated to the run's batch: how a constant that an exporter
  expanded to the batch (a ViT's class token concatenated with the patch embeddings) stays
  right at every batch, though layers read activations only.
- `shape`: the shape of its input (ONNX Shape, attrs `start` and `end`, Python slice bounds),
  kept as a layer only where the graph returns it (elsewhere the frontend folds it at the
  bound shapes).

On codes, batch_constant writes the value rounded once into the output format; shape writes
the dimensions in an index format.
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, always, register
from rsim.quant.tensor import Outcome, QTensor


def _batch_constant_shape(shapes, attrs, params):
    x, value = tuple(shapes[0]), params["value"].shape
    if not x or not value:
        raise ValueError(f"batch_constant needs a batch axis on its input {x} and value {value}")
    if value[0] not in (1, x[0]):
        raise ValueError(f"a constant of leading size {value[0]} cannot follow batch {x[0]}")
    return (x[0],) + tuple(value[1:])


def _batch_constant(arrays, attrs, params):
    shape = _batch_constant_shape([arrays[0].shape], attrs, params)
    return np.broadcast_to(params["value"], shape).copy()


def _batch_constant_integer(quant, inputs, rng):
    shape = _batch_constant_shape([inputs[0].data.shape], quant.layer.attrs, quant.layer.params)
    return quant.rounded_output(np.broadcast_to(
        quant.layer.params["value"].astype(np.float64), shape), rng)


def _shape(arrays, attrs, params):
    return np.array(arrays[0].shape[attrs["start"]:attrs["end"]], dtype=arrays[0].dtype)


def _shape_shape(shapes, attrs, params):
    return (len(tuple(shapes[0])[attrs["start"]:attrs["end"]]),)


def _shape_integer(quant, inputs, rng):
    dims = inputs[0].data.shape[quant.layer.attrs["start"]:quant.layer.attrs["end"]]
    return Outcome(QTensor(np.array(dims, dtype=quant.out_fmt.code_dtype), quant.out_fmt))


register(OpSpec("batch_constant", _batch_constant, _batch_constant_shape,
                integer=_batch_constant_integer))
register(OpSpec("shape", _shape, _shape_shape, integer=_shape_integer, index_output=always))
