"""The ONNX converter: one pass over the nodes in topological order at bound input shapes.

A node whose inputs are all constants is evaluated at import: by its converter when rsim has one
and the constants are floating point (the IR's own constant folding, `rsim.passes`), otherwise by
onnx's reference evaluator (the integer shape arithmetic exporters emit: Shape, Gather, Range, ...).
Shape and Size of an activation become constants from its static shape (a Shape the graph
returns becomes a `shape` layer). Every other node goes to its converter
(`rsim.frontends.onnx.registry`), which emits IR layers through the shared `GraphBuilder`.

Integer and boolean tensors (graph inputs of such types, and what ArgMax, TopK's indices, Equal
compute) are indices: they may feed only the inputs that take indices or truth values
(INDEX_INPUTS) and the ops that move them; a Cast to a float type makes them plain values.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from formats.errors import RsimError
from rsim.frontends.builder import GraphBuilder
from rsim.frontends.onnx import (  # noqa: F401
    attention,
    convolution,
    elementwise,
    indexing,
    layout,
    linear,
    nonlinear,
    normalization,
    reduce,
    resize,
)
from rsim.frontends.onnx.loading import node_label, topological_order
from rsim.frontends.onnx.registry import CONVERTERS
from rsim.network import Graph, Layer, Shape

# the operators converted to IR layers
COMPUTE_OPS: tuple[str, ...] = tuple(op for op in CONVERTERS if op not in ("Dropout", "Identity"))
# operators whose output is their input at inference (an identity layer, removed by the passes)
REMOVED_OPS = ("Dropout", "Identity")
# any deterministic operator whose inputs are all constants is evaluated at import; these are
# the ones exporters emit in shape subgraphs, named in the unsupported-operator message
FOLDED_EXAMPLES = ("Shape", "Size", "Gather", "Slice", "Concat", "Cast", "Constant",
                   "ConstantOfShape", "Unsqueeze", "Squeeze", "Reshape", "Range", "Expand")
# the input positions that take indices or truth values, and the ops that move an index tensor
# (input 0) unchanged
INDEX_INPUTS = {"Gather": {0, 1}, "Where": {0}, "Equal": {0, 1}, "Attention": {3},
                "Cast": {0}, "CastLike": {0, 1}, "Identity": {0}, "Reshape": {0}, "Flatten": {0},
                "Transpose": {0}, "Squeeze": {0}, "Unsqueeze": {0}, "Slice": {0}, "Split": {0},
                "Expand": {0}, "Tile": {0}, "ConstantOfShape": {0}, "Range": {0, 1, 2}}
NONDETERMINISTIC_OPS = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Multinomial", "Bernoulli")


def supported_ops_text() -> str:
    return (f"{', '.join(sorted(COMPUTE_OPS + REMOVED_OPS))}; and, folded at import, any operator whose "
            f"inputs are all constants ({', '.join(FOLDED_EXAMPLES)}, ...)")


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


class OnnxConverter:
    """Translates one ONNX graph at bound input shapes; what the op converters call."""

    def __init__(self, model: onnx.ModelProto, opset: int, path: Path, bound: dict[str, Shape],
                 index_inputs: frozenset[str] = frozenset()):
        self.model, self.graph, self.opset, self.path = model, model.graph, opset, path
        self.index_tensors = set(index_inputs)
        self._batch_inner: dict[str, int] = {}
        self.builder = GraphBuilder(bound, self.error)
        self.builder.constants.update(
            {t.name: numpy_helper.to_array(t) for t in self.graph.initializer})
        self.uses = Counter(n for node in self.graph.node for n in node.input if n)
        self.graph_outputs = [v.name for v in self.graph.output]
        self.node = onnx.NodeProto()  # the node being converted, named in errors

    # ----- driver ----------------------------------------------------------------------------
    def convert(self) -> Graph:
        producer = {o: i for i, node in enumerate(self.graph.node) for o in node.output if o}
        for index in topological_order(self.graph, producer) or []:
            self.node = self.graph.node[index]
            self._convert_node(self.node, index)
        return self.builder.finish(self.graph_outputs, str(self.path))

    def _convert_node(self, node: onnx.NodeProto, index: int) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            self.fail_unsupported(node)
        ins = [self.resolve(n) if n else "" for n in node.input]
        self.builder.layer_name = node.name or f"{op}_{index}"
        constants = [self.builder.constants.get(n) for n in ins if n]
        if all(c is not None for c in constants) and op not in NONDETERMINISTIC_OPS:
            if op in CONVERTERS and all(c.dtype.kind == "f" for c in constants):
                CONVERTERS[op](self, node, ins, attributes(node))
            else:
                self.evaluate(node, ins)
            return
        if op in ("Shape", "Size"):
            return self._fold_shape(node, ins)
        if op not in CONVERTERS:
            self.fail_unsupported(node)
        allowed = INDEX_INPUTS.get(op, set())
        for position, name in enumerate(ins):
            if name in self.index_tensors and position not in allowed:
                raise self.error(f"input {name!r} holds integers or truth values; rsim takes them "
                                 "only as indices (Gather indices, Where conditions, Equal, "
                                 "attention masks) or moves them (Reshape, Slice, ...); Cast it "
                                 "to a float type to compute on it")
        CONVERTERS[op](self, node, ins, attributes(node))

    def fail_unsupported(self, node: onnx.NodeProto) -> None:
        domain = f" in domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
        raise RsimError(f"{self.path}: node {node_label(node)}{domain} is not supported; rsim "
                        f"supports {supported_ops_text()}")

    def error(self, message: str) -> RsimError:
        return RsimError(f"{self.path}: node {node_label(self.node)}: {message}")

    # ----- what the op converters use --------------------------------------------------------
    def resolve(self, name: str) -> str:
        return self.builder.resolve(name)

    def emit(self, op: str, inputs: list[str], output: str, attrs: dict | None = None,
             params: dict[str, np.ndarray] | None = None, suffix: str = "") -> Layer | None:
        return self.builder.emit(op, inputs, output, attrs, params, suffix)

    def shape(self, name: str) -> Shape:
        return self.builder.shape(name)

    def is_activation(self, name: str) -> bool:
        return self.builder.is_activation(name)

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.builder.constants:
            raise self.error(f"{what} must be a constant (an initializer or foldable subgraph)")
        return self.builder.constants[name]

    def optional_const(self, ins: list[str], index: int, what: str) -> np.ndarray | None:
        if index >= len(ins) or not ins[index]:
            return None
        return self.const(ins[index], what)

    def activation(self, name: str) -> str:
        """A tensor the node computes on: an activation, or a constant the layer then folds."""
        if not (self.builder.is_activation(name) or self.builder.is_constant(name)):
            raise self.error(f"input {name!r} is neither computed nor constant")
        return name

    def used_extra_output(self, node: onnx.NodeProto) -> str | None:
        """The first output after the node's first that something reads (a later node or the
        graph's outputs), or None: rsim keeps only first outputs (no masks, indices, statistics)."""
        return next((o for o in node.output[1:]
                     if o and (self.uses[o] or o in self.graph_outputs)), None)

    def fresh_tensor(self, base: str, suffix: str) -> str:
        return self.builder.fresh_tensor(base, suffix)

    def operands(self, named: list[tuple[str, str]]) -> tuple[list[str], tuple[str, ...], dict]:
        """A node's operands by role, split into the layer's activation inputs, their roles and
        the constant ones as params (`rsim.ops.registry.named_operands`)."""
        inputs, roles, params = [], [], {}
        for role, name in named:
            if self.builder.is_activation(name):
                inputs.append(name)
                roles.append(role)
            else:
                params[role] = self.const(name, f"the {role} operand")
        return inputs, tuple(roles), params

    def batch_inner(self, name: str) -> int:
        """How many elements of the dimensions folded behind the batch share its axis (1 when
        the batch has an axis of its own): what a reshape splitting that axis needs to know.
        Reshapes record it; other layers keep their batch-carrying input's."""
        name = self.resolve(name)
        while name not in self._batch_inner:
            producer = next((layer for layer in reversed(self.builder.layers)
                             if layer.outputs[0] == name), None)
            carrier = None if producer is None else next(
                (t for t in producer.inputs if self.builder.batch_axis(t) is not None), None)
            if carrier is None:
                return 1
            name = carrier
        return self._batch_inner[name]

    def set_batch_inner(self, name: str, inner: int) -> None:
        self._batch_inner[self.resolve(name)] = inner

    def is_index(self, name: str) -> bool:
        """Whether the tensor holds indices or truth values (integer or boolean in ONNX)."""
        return self.resolve(name) in self.index_tensors or (
            self.builder.is_constant(name) and self.builder.constants[name].dtype.kind in "iub")

    def mark_index(self, name: str) -> None:
        self.index_tensors.add(self.resolve(name))

    def carry_index(self, source: str, target: str) -> None:
        """`target` moves the elements of `source`: it holds indices when `source` does."""
        if self.resolve(source) in self.index_tensors:
            self.mark_index(target)

    # ----- constants -------------------------------------------------------------------------
    def _fold_shape(self, node, ins):
        shape = np.array(self.shape(ins[0]), dtype=np.int64)
        if node.op_type == "Size":
            self.builder.constants[node.output[0]] = np.array(np.prod(shape), dtype=np.int64)
            return
        attrs = attributes(node)
        rank = len(shape)
        start, end = attrs.get("start", 0), attrs.get("end", rank)
        if node.output[0] in self.graph_outputs:  # a graph output must depend on an input
            self.emit("shape", [ins[0]], node.output[0], {"start": start, "end": end})
            self.mark_index(node.output[0])
            return
        self.builder.constants[node.output[0]] = shape[slice(start, end)]

    def evaluate(self, node, ins):
        """A node on constant inputs, by onnx's reference evaluator at the model's opset."""
        feeds = {n: self.builder.constants[n] for n in ins if n}
        try:
            graph = helper.make_graph(
                [node], "fold",
                [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                               v.shape) for n, v in feeds.items()],
                [helper.ValueInfoProto(name=o) for o in node.output if o])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                      ir_version=self.model.ir_version or onnx.IR_VERSION)
            values = ReferenceEvaluator(model).run(None, feeds)
        except Exception as error:
            raise self.error(f"cannot evaluate it on its constant inputs: {error}") from error
        for name, value in zip(node.output, values, strict=True):
            if name:
                self.builder.constants[name] = np.asarray(value)
