"""The table of canonical operators: for each op name, its float forward, shape rule and MAC rule.

Every layer of the IR names one of these ops; frontends map their framework's operators onto them
and the simulator dispatches on the same names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, ...]
Forward = Callable[[Sequence[np.ndarray], Mapping, Mapping[str, np.ndarray]], np.ndarray]
InferShape = Callable[[Sequence[Shape], Mapping, Mapping[str, np.ndarray]], Shape]
CountMacs = Callable[[Sequence[Shape], Shape, Mapping, Mapping[str, np.ndarray]], int]


def same_shape(shapes: Sequence[Shape], attrs: Mapping, params: Mapping) -> Shape:
    """Shape rule of the ops whose output has their input's shape (activations, LRN, softmax)."""
    return tuple(shapes[0])


def operands(items: Sequence, attrs: Mapping, params: Mapping) -> tuple:
    """The (left, right) operands of a binary layer (add/sub/mul/div, matmul), given its input
    arrays or shapes: a layer with one input holds the other operand in params `constant`, on
    the left when attrs `constant_first`."""
    if "constant" not in params:
        return tuple(items)
    const = params["constant"]
    return (const, items[0]) if attrs["constant_first"] else (items[0], const)


def no_macs(in_shapes: Sequence[Shape], out_shape: Shape, attrs: Mapping, params: Mapping) -> int:
    """Ops that multiply-accumulate nothing (activations, pooling, layout) count zero MACs."""
    return 0


@dataclass(frozen=True)
class OpSpec:
    """One canonical operator: `forward(arrays, attrs, params)`, `infer_shape(shapes, attrs,
    params)` and `macs(in_shapes, out_shape, attrs, params)`."""

    name: str
    forward: Forward
    infer_shape: InferShape
    macs: CountMacs = no_macs


OPS: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    OPS[spec.name] = spec
    return spec
