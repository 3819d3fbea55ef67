"""ONNX frontend (opsets 7 to the newest the installed onnx knows): reads a model with the `onnx` package and translates it to the IR.

- `loading`: read and check the file (external data only from inside the model's folder, opset,
  dangling tensors, cycles, input specs), then `load_onnx` returns a Network whose layers are
  built once the input shapes are bound;
- `converter`: walks the nodes in topological order; nodes whose inputs are all constants are
  evaluated at import (ONNX shape subgraphs), the rest go to the op converters;
- `registry` and the op families (`convolution`, `linear`, `elementwise`, `layout`,
  `normalization`): one converter per ONNX operator, each mapping it onto canonical IR ops.

Rewrites (BatchNorm and bias folding, identity removal, constant folding) are the shared IR
passes (`rsim.passes`), not part of this frontend.
"""

from rsim.frontends.onnx.converter import COMPUTE_OPS, REMOVED_OPS, supported_ops_text
from rsim.frontends.onnx.loading import MAX_OPSET, MIN_OPSET, load_onnx

__all__ = ["COMPUTE_OPS", "MAX_OPSET", "MIN_OPSET", "REMOVED_OPS", "load_onnx",
           "supported_ops_text"]
