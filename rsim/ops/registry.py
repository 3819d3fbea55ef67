"""The table of canonical operators: each op declared once, with everything the rest of rsim needs.

An `OpSpec` carries the op's float forward and shape rule (the float reference path), its GEMM
lowering when it multiply-accumulates (the scheduler, and the MAC count), how its output format
relates to its input's (the format assignment), and how the accelerator computes it (the
bit-accurate path): an `integer` model on fixed-point codes, a `minifloat` model for minifloat
MAC datapaths, or none (float-emulated). Every layer of the IR names one of these ops; frontends
map their framework's operators onto them, and nothing else dispatches on op names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rsim.quant.layer import LayerQuant
    from rsim.quant.tensor import Outcome, QTensor
    from rsim.schedule.geometry import GemmWork

Shape = tuple[int, ...]
Forward = Callable[[Sequence[np.ndarray], Mapping, Mapping[str, np.ndarray]], np.ndarray]
InferShape = Callable[[Sequence[Shape], Mapping, Mapping[str, np.ndarray]], Shape]
Lowering = Callable[[str, Sequence[Shape], Shape, Mapping, Mapping[str, np.ndarray]], "GemmWork"]
Model = Callable[["LayerQuant", "list[QTensor]", Any], "Outcome"]
ChangedModel = Callable[["LayerQuant", "list[QTensor]", "list[QTensor]", "Outcome", Any],
                        "Outcome | None"]
AttrRule = Callable[[Mapping, Mapping[str, np.ndarray], int], bool]


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


def named_operands(arrays: Sequence, attrs: Mapping, params: Mapping) -> dict:
    """The operands of a layer whose inputs mix activations and constants, by role: attrs
    `roles` names the role of each activation input in order, params hold the constant ones
    under their role names (given arrays or shapes alike)."""
    named = dict(params)
    named.update(zip(attrs["roles"], arrays, strict=True))
    return named


def always(attrs: Mapping, params: Mapping, n_inputs: int) -> bool:
    return True


def never(attrs: Mapping, params: Mapping, n_inputs: int) -> bool:
    return False


@dataclass(frozen=True)
class OpSpec:
    """One canonical operator.

    - `forward(arrays, attrs, params)` and `infer_shape(shapes, attrs, params)`: the float path;
    - `lowering(name, in_shapes, out_shape, attrs, params) -> GemmWork`: MAC ops only (the
      scheduler maps it onto the array; its MACs are the layer's);
    - `keeps_format(attrs, params, n_inputs)`: the output stays in the input's format (the op
      only moves, selects or clamps codes), else it takes the datapath's activation format;
    - `commutes`: on inputs quantized by a deterministic rounding, the op gives exactly its float
      output quantized the same way (selections and moves), so an isolated run can skip it;
    - `integer(quant, inputs, rng) -> Outcome`: the model on fixed-point codes, where it applies
      (`integer_applies(attrs, params, n_inputs)`); None: float-emulated;
    - `integer_changed(quant, inputs, before, outcome, rng)`: optional, `integer` on inputs that
      differ from `before` in few codes, from `outcome` (None when it cannot tell);
    - `nonlinear_unit`: the integer model is an integer-only nonlinear unit (softmax, layernorm,
      gelu), which a datapath builds only when its `nonlinear` is `integer` (else float-emulated);
    - `minifloat(quant, inputs, rng) -> Outcome`: the model on a minifloat datapath (the MAC
      kernels); `float_unit`: the op is computed exactly and rounded once there (sums,
      averages), not emulated;
    - `index_output(attrs, params, n_inputs)`: the output holds indices or truth values
      (argmax, equal, shape), which the bit-accurate path keeps as integers (an index format),
      never in the activation format.
    """

    name: str
    forward: Forward
    infer_shape: InferShape
    lowering: Lowering | None = None
    keeps_format: AttrRule = never
    commutes: bool = False
    integer: Model | None = None
    integer_applies: AttrRule = always
    integer_changed: ChangedModel | None = None
    nonlinear_unit: bool = False
    minifloat: Model | None = None
    float_unit: bool = False
    index_output: AttrRule = never

    @property
    def is_mac(self) -> bool:
        return self.lowering is not None

    def macs(self, in_shapes: Sequence[Shape], out_shape: Shape, attrs: Mapping,
             params: Mapping[str, np.ndarray]) -> int:
        """Multiply-accumulates of one run (those of its GEMM lowering; 0 for other ops)."""
        if self.lowering is None:
            return 0
        return self.lowering("", in_shapes, out_shape, attrs, params).macs


OPS: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add an op to the table (a test may add one and remove it with `unregister`)."""
    OPS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    del OPS[name]
