"""The table of ONNX operator converters: ONNX op type -> a function that emits its IR layers.

A converter is `convert(ctx, node, ins, attrs)`: `ctx` is the running `OnnxConverter` (constants,
shapes, errors, `emit`), `ins` the node's input names with aliases resolved ("" for an omitted
optional input), `attrs` its attributes as Python values. Adding an operator is one entry here
(usually a one-line `unary`/`binary` mapping) in the module of its family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[[Any, Any, list[str], dict[str, Any]], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*op_types: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of `op_types`."""
    def register(function: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = function
        return function

    return register


def unary(op_type: str, op: str, **defaults: Any) -> None:
    """`op_type` maps onto IR op `op` on its one activation input; `defaults` name the ONNX
    attributes copied to the IR attrs, with their ONNX default values."""
    def convert(ctx, node, ins, attrs):
        values = {key: type(default)(attrs.get(key, default)) for key, default in defaults.items()}
        ctx.emit(op, [ctx.activation(ins[0])], node.output[0], values)

    CONVERTERS[op_type] = convert
