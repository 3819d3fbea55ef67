"""ONNX frontend (opsets 7..21): reads a model with the `onnx` package and builds the Network IR.

At import it folds constant subgraphs (Shape/Gather/Slice/Concat/Cast/Constant/ConstantOfShape/
Range/... on constants, evaluated with onnx's reference evaluator), removes Identity and Dropout,
folds BatchNormalization and constant Add/Sub into the conv/FC before them where nothing else
reads that conv/FC's output, and rewrites Reshape targets that carry a literal batch (a model
exported for batch 1 then runs any batch). External data is read only from inside the model's
folder.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from formats.errors import RsimError
from rsim.network import Graph, Layer, Network, Shape, with_batch
from rsim.ops.layout import reshape_target

MIN_OPSET, MAX_OPSET = 7, 21

# ONNX operators that become IR layers (a few become more than one)
COMPUTE_OPS = (
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Concat",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Pad",
    "Softmax",
    "LRN",
)
# the operators converted by one shared rule, by the canonical op of the layer they become; every
# other operator of COMPUTE_OPS has its own `_Converter._op_<name>` (checked below the class)
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
    "GlobalAveragePool": "global_avgpool",
}
_POOLS = {"MaxPool": "maxpool", "AveragePool": "avgpool"}
# ONNX operators whose output is their input at inference
REMOVED_OPS = ("Dropout", "Identity")
# any deterministic operator whose inputs are all constants is evaluated at import; these are
# the ones exporters emit in shape subgraphs, named in the unsupported-operator message
FOLDED_EXAMPLES = (
    "Shape",
    "Size",
    "Gather",
    "Slice",
    "Concat",
    "Cast",
    "Constant",
    "ConstantOfShape",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Range",
    "Expand",
)
NONDETERMINISTIC_OPS = (
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
)
FLOAT_TENSOR_TYPES = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
)

# float types narrower than the float path's float32, by the format spec they round to
NARROW_FLOATS = {onnx.TensorProto.FLOAT16: "fp16", onnx.TensorProto.BFLOAT16: "bf16"}


def supported_ops_text() -> str:
    return (
        f"{', '.join(COMPUTE_OPS + REMOVED_OPS)}; and, folded at import, any operator whose "
        f"inputs are all constants ({', '.join(FOLDED_EXAMPLES)}, ...)"
    )


def load_onnx(path: Path, input_shapes: dict[str, Any] | None = None) -> Network:
    """Read and check an ONNX file; the layers are built once the input shapes are bound."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RsimError(f"cannot read ONNX model {path}: {error.strerror or error}") from error
    model = _parse(path, data)
    _load_external_data(model, path)
    opset = _default_opset(model, path)
    _check_structure(model.graph, path)
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # ValidationError, and ValueError for impossible IR versions
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RsimError(f"{path} is not a valid ONNX model: {first}") from error
    initializers = {t.name for t in model.graph.initializer}
    specs = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        specs[value.name] = _input_spec(value, path)
    outputs = [v.name for v in model.graph.output]

    def build(bound: dict[str, Shape]) -> Graph:
        return _Converter(model, opset, path, bound).convert()

    return Network(
        build,
        specs,
        outputs,
        source=path,
        sha256=hashlib.sha256(data).hexdigest(),
        input_shapes=input_shapes,
    )


def _parse(path: Path, data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # protobuf raises DecodeError and friends
        raise RsimError(
            f"{path} is not a readable ONNX model (truncated or corrupt file): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not model.HasField("graph") or not model.graph.output:
        raise RsimError(
            f"{path} is not a readable ONNX model (truncated or corrupt file): "
            "it has no graph outputs"
        )
    return model


def _all_tensors(graph: onnx.GraphProto):
    """Every TensorProto a graph holds: initializers, node attributes, subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)
            for sub in attr.graphs:
                yield from _all_tensors(sub)


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    folder = path.parent.resolve()
    for tensor in _all_tensors(model.graph):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise RsimError(
                f"{path}: tensor {tensor.name!r} points to external data {location!r} "
                f"outside the model's folder {folder}; external data must stay inside it"
            )
        if not target.is_file():
            raise RsimError(
                f"{path}: external data file {location!r} of tensor {tensor.name!r} does not exist"
            )
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as error:  # short files, bad offsets
        raise RsimError(f"{path}: cannot read external data: {error}") from error


def _default_opset(model: onnx.ModelProto, path: Path) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise RsimError(
            f"{path} uses ONNX opset {opset}; rsim reads opsets {MIN_OPSET}..{MAX_OPSET}"
        )
    return opset


def _check_structure(graph: onnx.GraphProto, path: Path) -> None:
    """Every tensor a node reads must come from somewhere, and the nodes must not form a cycle."""
    available = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    producer = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            if out:
                producer[out] = index
    for node in graph.node:
        for name in node.input:
            if name and name not in available and name not in producer:
                raise RsimError(
                    f"{path}: node {_node_label(node)} reads tensor {name!r}, which no "
                    "node produces and which is neither a graph input nor an initializer "
                    "(dangling tensor)"
                )
    for value in graph.output:
        if value.name not in available and value.name not in producer:
            raise RsimError(
                f"{path}: graph output {value.name!r} is produced by no node (dangling tensor)"
            )
    order = _topological_order(graph, producer)
    if order is None:
        raise RsimError(
            f"{path}: the graph has a cycle (nodes reading each other's outputs); "
            "an ONNX graph must be acyclic"
        )


def _topological_order(graph: onnx.GraphProto, producer: dict[str, int]) -> list[int] | None:
    deps = [{producer[n] for n in node.input if n in producer} for node in graph.node]
    users: dict[int, list[int]] = {}
    for index, ds in enumerate(deps):
        for d in ds:
            users.setdefault(d, []).append(index)
    waiting = [len(ds) for ds in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order = []
    while ready:
        index = ready.pop(0)
        order.append(index)
        for user in users.get(index, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    return order if len(order) == len(graph.node) else None


def _node_label(node: onnx.NodeProto) -> str:
    return f"{node.name or (node.output[0] if node.output else '?')!r} ({node.op_type})"


def _input_spec(value: onnx.ValueInfoProto, path: Path) -> tuple[int | None, ...]:
    ttype = value.type.tensor_type
    if not value.type.HasField("tensor_type") or ttype.elem_type not in FLOAT_TENSOR_TYPES:
        raise RsimError(
            f"{path}: input {value.name!r} is not a floating-point tensor; rsim's float "
            "path takes float inputs"
        )
    if not ttype.HasField("shape"):
        raise RsimError(f"{path}: input {value.name!r} has no declared rank; rsim needs it")
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in ttype.shape.dim
    )


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


class _Converter:
    """One pass over the sorted ONNX nodes at bound input shapes, emitting IR layers."""

    def __init__(self, model: onnx.ModelProto, opset: int, path: Path, bound: dict[str, Shape]):
        self.model, self.graph, self.opset, self.path = model, model.graph, opset, path
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer
        }
        self.shapes: dict[str, Shape] = dict(bound)
        first = next(iter(bound.values()), ())
        self.batch = first[0] if first else 1
        # shapes at batch + 1 tell which tensors carry the batch on their leading axis
        self.alt_shapes: dict[str, Shape | None] = {
            n: with_batch(s, self.batch, self.batch + 1) for n, s in bound.items()
        }
        self.bound = bound
        self.aliases: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.producers: dict[str, Layer] = {}
        self.batch_note: str | None = None
        self.uses = Counter(n for node in self.graph.node for n in node.input if n)
        self.graph_outputs = {v.name for v in self.graph.output}
        self.names: set[str] = set()
        self.node = onnx.NodeProto()  # the node being converted, named in errors
        self.layer_name = ""  # base name of the layers it becomes

    # ----- driver ------------------------------------------------------------------------------
    def convert(self) -> Graph:
        producer = {o: i for i, node in enumerate(self.graph.node) for o in node.output if o}
        for index in _topological_order(self.graph, producer) or []:
            self.node = self.graph.node[index]
            self._convert_node(self.node, index)
        for name in self.graph_outputs:
            kept = self.resolve(name)
            if kept in self.consts and kept not in self.shapes:
                raise RsimError(
                    f"{self.path}: graph output {name!r} is a constant; rsim needs every "
                    "output to depend on an input"
                )
        aliases = {k: self.resolve(k) for k in self.aliases}
        return Graph(
            self.layers,
            dict(self.bound),
            aliases,
            self.batch,
            self.batch_note,
        )

    def _convert_node(self, node: onnx.NodeProto, index: int) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            self.fail_unsupported(node)
        ins = [self.resolve(n) if n else "" for n in node.input]
        if op in REMOVED_OPS:
            return self._remove(node, ins)
        if op == "Cast" and ins[0] in self.shapes:
            return self._cast_activation(node, ins)
        if op in ("Shape", "Size") and ins[0] in self.shapes:
            return self._fold_shape(node, ins)
        if all(n == "" or n in self.consts for n in ins) and op not in NONDETERMINISTIC_OPS:
            return self._fold(node, ins)
        if op not in COMPUTE_OPS:
            self.fail_unsupported(node)
        attrs = _attributes(node)
        self.layer_name = node.name or f"{op}_{index}"
        if op in _BINARY:
            self._binary(node, ins, _BINARY[op])
        elif op in _UNARY:
            self._unary(node, ins, _UNARY[op])
        elif op in _POOLS:
            self._pool(node, ins, attrs, _POOLS[op])
        else:
            getattr(self, f"_op_{op}")(node, ins, attrs)

    def fail_unsupported(self, node: onnx.NodeProto) -> None:
        domain = f" in domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
        raise RsimError(
            f"{self.path}: node {_node_label(node)}{domain} is not supported; rsim "
            f"supports {supported_ops_text()}"
        )

    def error(self, message: str) -> RsimError:
        return RsimError(f"{self.path}: node {_node_label(self.node)}: {message}")

    def resolve(self, name: str) -> str:
        while name in self.aliases:
            name = self.aliases[name]
        return name

    # ----- constants, aliases, layers ------------------------------------------------------------
    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise self.error(f"{what} must be a constant (an initializer or foldable subgraph)")
        return self.consts[name]

    def optional_const(self, ins: list[str], index: int, what: str) -> np.ndarray | None:
        if index >= len(ins) or not ins[index]:
            return None
        return self.const(ins[index], what)

    def activation(self, name: str) -> str:
        if name not in self.shapes:
            raise self.error(f"input {name!r} is a constant where rsim needs an activation")
        return name

    def used_extra_output(self, node: onnx.NodeProto) -> str | None:
        """The first output after the node's first that something reads (a later node or the
        graph's outputs), or None: rsim keeps only first outputs (no masks, indices, statistics)."""
        return next(
            (o for o in node.output[1:] if o and (self.uses[o] or o in self.graph_outputs)), None
        )

    def _remove(self, node, ins):
        extra = self.used_extra_output(node)
        if extra is not None:
            raise self.error(
                f"its output {extra!r} (the dropout mask) is used; rsim removes Dropout"
            )
        if ins[0] in self.consts:
            self.consts[node.output[0]] = self.consts[ins[0]]
        else:
            self.aliases[node.output[0]] = ins[0]

    def _cast_activation(self, node, ins):
        to = _attributes(node)["to"]
        if to not in FLOAT_TENSOR_TYPES:
            raise self.error(
                f"casts an activation to {onnx.TensorProto.DataType.Name(to)}; the float "
                "path only keeps floating-point activations"
            )
        if to in NARROW_FLOATS:  # the values are rounded to the narrower type
            self.layer_name = node.name or node.output[0]
            self.emit("cast", [ins[0]], node.output[0], {"format": NARROW_FLOATS[to]})
        else:
            self.aliases[node.output[0]] = ins[0]

    def _fold_shape(self, node, ins):
        shape = np.array(self.shapes[ins[0]], dtype=np.int64)
        if node.op_type == "Size":
            self.consts[node.output[0]] = np.array(np.prod(shape), dtype=np.int64)
            return
        attrs = _attributes(node)
        rank = len(shape)
        start, end = attrs.get("start", 0), attrs.get("end", rank)
        self.consts[node.output[0]] = shape[slice(start, end)]

    def _fold(self, node, ins):
        feeds = {n: self.consts[n] for n in ins if n}
        try:
            graph = helper.make_graph(
                [node],
                "fold",
                [
                    helper.make_tensor_value_info(
                        n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape
                    )
                    for n, v in feeds.items()
                ],
                [helper.ValueInfoProto(name=o) for o in node.output if o],
            )
            model = helper.make_model(
                graph,
                opset_imports=[helper.make_opsetid("", self.opset)],
                ir_version=self.model.ir_version or onnx.IR_VERSION,
            )
            values = ReferenceEvaluator(model).run(None, feeds)
        except Exception as error:
            raise self.error(f"cannot evaluate it on its constant inputs: {error}") from error
        for name, value in zip(node.output, values, strict=True):
            if name:
                self.consts[name] = np.asarray(value)

    def fresh_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def emit(
        self,
        op: str,
        inputs: list[str],
        output: str,
        attrs: dict | None = None,
        params: dict[str, np.ndarray] | None = None,
        suffix: str = "",
    ) -> Layer:
        layer = Layer(
            self.fresh_name(self.layer_name + suffix),
            op,
            tuple(inputs),
            (output,),
            attrs or {},
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (params or {}).items()},
        )
        try:
            self.shapes[output] = layer.infer_shape(*(self.shapes[t] for t in inputs))
        except ValueError as error:
            raise self.error(str(error)) from error
        alt = [self.alt_shapes.get(t) for t in inputs]
        self.alt_shapes[output] = None
        if all(a is not None for a in alt):
            try:
                self.alt_shapes[output] = layer.infer_shape(*alt)
            except ValueError as error:
                self.batch_note = self.batch_note or (
                    f"the model was exported for batch {self.batch} and layer {layer.name!r} "
                    f"({layer.op}) carries that batch in a constant rsim cannot rewrite: {error}"
                )
        self.layers.append(layer)
        self.producers[output] = layer
        return layer

    def batch_led(self, name: str) -> bool:
        shape, alt = self.shapes.get(name), self.alt_shapes.get(name)
        return (
            bool(shape)
            and alt is not None
            and shape[0] == self.batch
            and alt[0] == self.batch + 1
            and tuple(alt[1:]) == tuple(shape[1:])
        )

    def fusable(self, name: str, ops: tuple[str, ...]) -> Layer | None:
        """The layer producing `name` if it is one of `ops` and nothing else reads `name`."""
        layer = self.producers.get(name)
        if layer is None or layer.op not in ops or layer.outputs[0] != name:
            return None
        if self.uses[name] != 1 or any(self.resolve(o) == name for o in self.graph_outputs):
            return None
        return layer

    def rename_output(self, layer: Layer, new: str) -> None:
        old = layer.outputs[0]
        layer.outputs = (new,)
        self.shapes[new], self.alt_shapes[new] = self.shapes[old], self.alt_shapes[old]
        self.producers[new] = layer
        del self.producers[old]
        self.aliases[old] = new

    # ----- spatial attribute helpers -----------------------------------------------------------
    def spatial(self, attrs: dict, kernel: tuple[int, ...], in_shape: Shape, what: str) -> dict:
        if len(kernel) != 2 or len(in_shape) != 4:
            raise self.error(
                f"rsim supports 2-D {what} only (NCHW input with a 2-D kernel), got "
                f"kernel {tuple(kernel)} on input {in_shape}"
            )
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for axis in (0, 1):
                size = in_shape[2 + axis]
                out = -(-size // strides[axis])
                total = max(
                    (out - 1) * strides[axis] + dilations[axis] * (kernel[axis] - 1) + 1 - size, 0
                )
                pads.append(_split_same_pad(total, auto_pad))
            pad4 = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        elif auto_pad == "VALID":
            pad4 = (0, 0, 0, 0)
        elif auto_pad == "NOTSET":
            pad4 = tuple(attrs.get("pads", (0, 0, 0, 0)))
        else:
            raise self.error(
                f"auto_pad {auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
            )
        return {"kernel": tuple(kernel), "strides": strides, "dilations": dilations, "pads": pad4}

    def conv_params(self, ins: list[str], what: str) -> dict[str, np.ndarray]:
        """A Conv/ConvTranspose node's constant weight and optional bias as layer params."""
        params = {"weight": self.const(ins[1], f"the {what} weight")}
        bias = self.optional_const(ins, 2, f"the {what} bias")
        if bias is not None:
            params["bias"] = bias
        return params

    # ----- converters (one per ONNX op type besides those of _BINARY, _UNARY, _POOLS) -----------
    def _op_Conv(self, node, ins, attrs):
        x = self.activation(ins[0])
        params = self.conv_params(ins, "Conv")
        w = params["weight"]
        spatial = self.spatial(
            attrs, tuple(attrs.get("kernel_shape", w.shape[2:])), self.shapes[x], "Conv"
        )
        self.emit("conv", [x], node.output[0], dict(spatial, groups=attrs.get("group", 1)), params)

    def _op_ConvTranspose(self, node, ins, attrs):
        x = self.activation(ins[0])
        params = self.conv_params(ins, "ConvTranspose")
        w = params["weight"]
        kernel = tuple(attrs.get("kernel_shape", w.shape[2:]))
        in_shape = self.shapes[x]
        spatial = self.spatial(dict(attrs, auto_pad="NOTSET"), kernel, in_shape, "ConvTranspose")
        out_pad = tuple(attrs.get("output_padding", (0, 0)))
        s, d = spatial["strides"], spatial["dilations"]
        auto_pad = attrs.get("auto_pad", "NOTSET")
        target = attrs.get("output_shape")
        if target is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = [in_shape[2 + a] * s[a] for a in (0, 1)]
        if target is not None:
            target = tuple(target)[-2:]
            pads = []
            for a in (0, 1):
                total = (
                    s[a] * (in_shape[2 + a] - 1)
                    + out_pad[a]
                    + d[a] * (kernel[a] - 1)
                    + 1
                    - target[a]
                )
                pads.append(_split_same_pad(total, auto_pad))
            if min(pads[0][0], pads[1][0]) < 0:
                raise self.error(
                    f"output_shape {target} needs negative leading padding, which rsim "
                    "does not support"
                )
            spatial["pads"] = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        self.emit(
            "conv_transpose",
            [x],
            node.output[0],
            dict(spatial, groups=attrs.get("group", 1), output_padding=out_pad),
            params,
        )

    def _op_Gemm(self, node, ins, attrs):
        a = self.activation(ins[0])
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        if len(self.shapes[a]) != 2:
            raise self.error(f"Gemm takes a 2-D input, got shape {self.shapes[a]}")
        if attrs.get("transA", 0):
            a = self._transpose_layer(a, (1, 0), "/transpose_a")
        c = self.optional_const(ins, 2, "the Gemm bias C")
        out = node.output[0]
        if ins[1] in self.consts:
            b = self.consts[ins[1]].astype(np.float64)
            weight = (b.T if attrs.get("transB", 0) else b) * alpha
            params = {"weight": weight}
            bias = (
                None if c is None else _as_row_vector(beta * c.astype(np.float64), weight.shape[1])
            )
            if bias is not None:
                params["bias"] = bias
            if c is None or bias is not None:
                self.emit("gemm", [a], out, {}, params)
                return
            mid = self.fresh_tensor(out, "/gemm")
            self.emit("gemm", [a], mid, {}, params)
            self.emit("add", [mid], out, {"constant_first": False}, {"constant": beta * c}, "/bias")
            return
        b = self.activation(ins[1])
        if attrs.get("transB", 0):
            b = self._transpose_layer(b, (1, 0), "/transpose_b")
        steps = [("matmul", {}, {})]
        if alpha != 1.0:
            steps.append(("mul", {"constant_first": False}, {"constant": np.array(alpha)}))
        if c is not None:
            steps.append(("add", {"constant_first": False}, {"constant": beta * c}))
        current = [a, b]
        for k, (op, op_attrs, params) in enumerate(steps):
            target = out if k == len(steps) - 1 else self.fresh_tensor(out, f"/{op}")
            self.emit(op, current, target, op_attrs, params, "" if k == 0 else f"/{op}")
            current = [target]

    def fresh_tensor(self, base: str, suffix: str) -> str:
        name = base + suffix
        while name in self.shapes or name in self.consts:
            name += "_"
        return name

    def _transpose_layer(self, x: str, perm: tuple[int, ...], suffix: str) -> str:
        out = self.fresh_tensor(x, suffix)
        self.emit("transpose", [x], out, {"perm": perm}, suffix=suffix)
        return out

    def _op_MatMul(self, node, ins, attrs):
        a, b = ins[:2]
        if a in self.shapes and b in self.consts and self.consts[b].ndim == 2:
            self.emit("gemm", [a], node.output[0], {}, {"weight": self.consts[b]})
        elif a in self.shapes and b in self.shapes:
            self.emit("matmul", [a, b], node.output[0])
        else:
            const_first = a in self.consts
            x = b if const_first else a
            self.emit(
                "matmul",
                [x],
                node.output[0],
                {"constant_first": const_first},
                {"constant": self.consts[a if const_first else b]},
            )

    def _op_BatchNormalization(self, node, ins, attrs):
        x = self.activation(ins[0])
        if attrs.get("training_mode", 0):
            raise self.error("training_mode=1 computes batch statistics; rsim runs inference only")
        if self.used_extra_output(node) is not None:
            raise self.error("its running-statistics outputs are used; rsim runs inference only")
        if not attrs.get("spatial", 1):
            raise self.error("spatial=0 (per-activation statistics) is not supported")
        gamma, beta, mean, var = (
            self.const(n, "BatchNormalization statistics").astype(np.float64) for n in ins[1:5]
        )
        scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
        shift = beta - mean * scale
        out = node.output[0]
        producer = self.fusable(x, ("conv", "conv_transpose", "gemm"))
        if producer is not None and self._fold_channel_affine(producer, scale, shift):
            self.rename_output(producer, out)
            return
        self.emit("batchnorm", [x], out, {}, {"scale": scale, "shift": shift})

    def _fold_channel_affine(self, layer: Layer, scale: np.ndarray, shift: np.ndarray) -> bool:
        """Fold y = out * scale + shift (axis 1 of the layer's output) into its weight and bias."""
        out_shape = self.shapes[layer.outputs[0]]
        w = layer.params["weight"].astype(np.float64)
        bias = layer.params.get("bias", np.zeros(out_shape[1], np.float32)).astype(np.float64)
        if layer.op == "conv":
            w = w * scale.reshape(-1, 1, 1, 1)
        elif layer.op == "conv_transpose":
            g = layer.attrs["groups"]
            c_in, per_group = w.shape[:2]
            w = (
                w.reshape(g, c_in // g, per_group, *w.shape[2:])
                * scale.reshape(g, 1, per_group, 1, 1)
            ).reshape(w.shape)
        elif len(out_shape) == 2:
            w = w * scale.reshape(1, -1)
        else:
            return False
        layer.params["weight"] = w.astype(np.float32)
        layer.params["bias"] = (bias * scale + shift).astype(np.float32)
        return True

    def _binary(self, node, ins, op):
        a, b = ins[:2]
        out = node.output[0]
        if a in self.shapes and b in self.shapes:
            self.emit(op, [a, b], out)
            return
        const_first = a in self.consts
        x, c = (b, self.consts[a]) if const_first else (a, self.consts[b])
        if (op == "add" or op == "sub" and not const_first) and self._fold_into_bias(x, c, op, out):
            return
        self.emit(op, [x], out, {"constant_first": const_first}, {"constant": c})

    def _fold_into_bias(self, x: str, c: np.ndarray, op: str, out: str) -> bool:
        """conv/FC output + per-output-channel constant: the constant joins the layer's bias."""
        layer = self.fusable(x, ("conv", "conv_transpose", "gemm"))
        if layer is None:
            return False
        shape = self.shapes[x]
        if c.ndim > len(shape):
            return False
        aligned = (1,) * (len(shape) - c.ndim) + tuple(c.shape)
        channel_axis = len(shape) - 1 if layer.op == "gemm" else 1
        if any(d != 1 for i, d in enumerate(aligned) if i != channel_axis) or aligned[
            channel_axis
        ] not in (1, shape[channel_axis]):
            return False
        vector = np.broadcast_to(c.reshape(-1).astype(np.float32), (shape[channel_axis],))
        bias = layer.params.get("bias")
        signed = vector if op == "add" else -vector
        layer.params["bias"] = signed.copy() if bias is None else (bias + signed).astype(np.float32)
        self.rename_output(layer, out)
        return True

    def _unary(self, node, ins, op, attrs=None):
        self.emit(op, [self.activation(ins[0])], node.output[0], attrs or {})

    def _op_LeakyRelu(self, node, ins, attrs):
        self._unary(node, ins, "leaky_relu", {"alpha": float(attrs.get("alpha", 0.01))})

    def _op_HardSigmoid(self, node, ins, attrs):
        self._unary(
            node,
            ins,
            "hard_sigmoid",
            {"alpha": float(attrs.get("alpha", 0.2)), "beta": float(attrs.get("beta", 0.5))},
        )

    def _op_Clip(self, node, ins, attrs):
        if self.opset < 11:
            low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
        else:
            lo = self.optional_const(ins, 1, "the Clip minimum")
            hi = self.optional_const(ins, 2, "the Clip maximum")
            low = -np.inf if lo is None else lo
            high = np.inf if hi is None else hi
        self._unary(node, ins, "clip", {"min": float(low), "max": float(high)})

    def _op_LRN(self, node, ins, attrs):
        self._unary(
            node,
            ins,
            "lrn",
            {
                "size": int(attrs["size"]),
                "alpha": float(attrs.get("alpha", 1e-4)),
                "beta": float(attrs.get("beta", 0.75)),
                "bias": float(attrs.get("bias", 1.0)),
            },
        )

    def _op_Softmax(self, node, ins, attrs):
        x = self.activation(ins[0])
        rank = len(self.shapes[x])
        axis = attrs.get("axis", 1 if self.opset < 13 else -1) % rank
        axes = tuple(range(axis, rank)) if self.opset < 13 else (axis,)
        self.emit("softmax", [x], node.output[0], {"axes": axes})

    def _pool(self, node, ins, attrs, op):
        x = self.activation(ins[0])
        if self.used_extra_output(node) is not None:
            raise self.error("its Indices output is used; rsim computes pooled values only")
        spatial = self.spatial(attrs, tuple(attrs["kernel_shape"]), self.shapes[x], node.op_type)
        spatial["ceil_mode"] = bool(attrs.get("ceil_mode", 0))
        if op == "avgpool":
            spatial["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        self.emit(op, [x], node.output[0], spatial)

    def _op_Concat(self, node, ins, attrs):
        xs = [self.activation(n) for n in ins if n]
        axis = attrs["axis"] % len(self.shapes[xs[0]])
        self.emit("concat", xs, node.output[0], {"axis": axis})

    def _op_Flatten(self, node, ins, attrs):
        x = self.activation(ins[0])
        axis = attrs.get("axis", 1)
        self.emit(
            "flatten",
            [x],
            node.output[0],
            {"axis": axis + len(self.shapes[x]) if axis < 0 else axis},
        )

    def _op_Reshape(self, node, ins, attrs):
        x = self.activation(ins[0])
        target = (
            [int(d) for d in self.const(ins[1], "the Reshape shape")]
            if self.opset >= 5
            else list(attrs["shape"])
        )
        allowzero = bool(attrs.get("allowzero", 0))
        in_shape = self.shapes[x]
        if (
            target
            and target[0] == self.batch
            and self.batch_led(x)
            and not (allowzero and self.batch == 0)
        ):
            try:
                carries_batch = reshape_target(in_shape, target, allowzero)[0] == self.batch
            except ValueError as error:
                raise self.error(str(error)) from error
            if carries_batch:
                target[0] = 0
        self.emit("reshape", [x], node.output[0], {"shape": tuple(target), "allowzero": allowzero})

    def _op_Transpose(self, node, ins, attrs):
        x = self.activation(ins[0])
        rank = len(self.shapes[x])
        perm = tuple(attrs.get("perm", range(rank - 1, -1, -1)))
        self.emit("transpose", [x], node.output[0], {"perm": perm})

    def _axes(self, ins, attrs, what) -> list[int] | None:
        if self.opset >= 13:
            axes = self.optional_const(ins, 1, f"the {what} axes")
            return None if axes is None else [int(a) for a in axes.reshape(-1)]
        return list(attrs["axes"]) if "axes" in attrs else None

    def _op_Squeeze(self, node, ins, attrs):
        x = self.activation(ins[0])
        shape = self.shapes[x]
        axes = self._axes(ins, attrs, "Squeeze")
        axes = (
            [i for i, d in enumerate(shape) if d == 1]
            if axes is None
            else [a % len(shape) for a in axes]
        )
        self.emit("squeeze", [x], node.output[0], {"axes": tuple(sorted(axes))})

    def _op_Unsqueeze(self, node, ins, attrs):
        x = self.activation(ins[0])
        axes = self._axes(ins, attrs, "Unsqueeze")
        if axes is None:
            raise self.error("Unsqueeze needs axes")
        rank = len(self.shapes[x]) + len(axes)
        self.emit("unsqueeze", [x], node.output[0], {"axes": tuple(sorted(a % rank for a in axes))})

    def _op_Pad(self, node, ins, attrs):
        x = self.activation(ins[0])
        rank = len(self.shapes[x])
        mode = attrs.get("mode", "constant")
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise self.error(f"Pad mode {mode!r} is not one of constant, reflect, edge, wrap")
        if self.opset < 11:
            flat, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
            axes = list(range(rank))
        else:
            flat = [int(p) for p in self.const(ins[1], "the Pad pads")]
            v = self.optional_const(ins, 2, "the Pad constant value")
            value = 0.0 if v is None else float(v.reshape(-1)[0]) if v.size else 0.0
            a = self.optional_const(ins, 3, "the Pad axes")
            axes = list(range(rank)) if a is None else [int(i) % rank for i in a]
        count = len(axes)
        pads = [(0, 0)] * rank
        for k, axis in enumerate(axes):
            pads[axis] = (flat[k], flat[k + count])
        self.emit("pad", [x], node.output[0], {"pads": tuple(pads), "mode": mode, "value": value})


# COMPUTE_OPS stays an explicit tuple (its order is the one the unsupported-operator message
# lists); it must name exactly the operators the tables and the _op_ methods convert
assert set(COMPUTE_OPS) == set(_BINARY) | set(_UNARY) | set(_POOLS) | {
    name.removeprefix("_op_") for name in vars(_Converter) if name.startswith("_op_")
}, "COMPUTE_OPS and the converters disagree"


def _split_same_pad(total: int, auto_pad: str) -> tuple[int, int]:
    """(begin, end) padding of one axis under auto_pad SAME_*: an odd cell goes to the end for
    SAME_UPPER, to the beginning for SAME_LOWER (the ONNX rule)."""
    small, big = total // 2, total - total // 2
    return (small, big) if auto_pad == "SAME_UPPER" else (big, small)


def _as_row_vector(c: np.ndarray, n: int) -> np.ndarray | None:
    """C as an (N,) bias when it is the same for every row (scalar, (N,), (1, N)), else None."""
    aligned = (1,) * (2 - c.ndim) + tuple(c.shape) if c.ndim <= 2 else None
    if aligned is None or aligned[0] != 1 or aligned[1] not in (1, n):
        return None
    return np.broadcast_to(c.reshape(-1), (n,)).copy()
