"""Reading and checking an ONNX file: bytes to a checked ModelProto (external data only from
inside the model's folder), its default-domain opset, graph structure checks (dangling tensors,
cycles) and the graph inputs' declared shapes; `load_onnx` returns the Network whose layers the
converter builds once the input shapes are bound."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import onnx
from onnx import external_data_helper

from formats.errors import RsimError
from rsim.network import Graph, Network, Shape

MIN_OPSET = 7
# every opset the installed onnx package knows: the operators rsim converts kept their float
# semantics after opset 21 (later versions widened the element types, and Cast's round_mode
# concerns e8m0 targets, which rsim refuses)
MAX_OPSET = onnx.defs.onnx_opset_version()
FLOAT_TENSOR_TYPES = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
)
# integer and boolean inputs: indices (token ids, conditions), which rsim takes unchanged
INDEX_TENSOR_TYPES = (
    onnx.TensorProto.INT64,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT64,
    onnx.TensorProto.BOOL,
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
    index_inputs = frozenset(v.name for v in model.graph.input if v.name in specs
                             and v.type.tensor_type.elem_type in INDEX_TENSOR_TYPES)
    outputs = [v.name for v in model.graph.output]

    def build(bound: dict[str, Shape]) -> Graph:
        from rsim.frontends.onnx.converter import OnnxConverter

        return OnnxConverter(model, opset, path, bound, index_inputs).convert()

    return Network(
        build,
        specs,
        outputs,
        source=path,
        sha256=hashlib.sha256(data).hexdigest(),
        input_shapes=input_shapes,
        index_inputs=index_inputs,
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
    if opset is None:
        domains = ", ".join(repr(d) for d in versions) or "none"
        raise RsimError(f"{path} imports no opset of the default ONNX domain (it imports "
                        f"{domains}); rsim converts default-domain operators of opsets "
                        f"{MIN_OPSET}..{MAX_OPSET}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise RsimError(f"{path} uses ONNX opset {opset}; rsim reads opsets "
                        f"{MIN_OPSET}..{MAX_OPSET} (the newest the installed onnx package "
                        "knows)")
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
                    f"{path}: node {node_label(node)} reads tensor {name!r}, which no "
                    "node produces and which is neither a graph input nor an initializer "
                    "(dangling tensor)"
                )
    for value in graph.output:
        if value.name not in available and value.name not in producer:
            raise RsimError(
                f"{path}: graph output {value.name!r} is produced by no node (dangling tensor)"
            )
    order = topological_order(graph, producer)
    if order is None:
        raise RsimError(
            f"{path}: the graph has a cycle (nodes reading each other's outputs); "
            "an ONNX graph must be acyclic"
        )


def topological_order(graph: onnx.GraphProto, producer: dict[str, int]) -> list[int] | None:
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


def node_label(node: onnx.NodeProto) -> str:
    return f"{node.name or (node.output[0] if node.output else '?')!r} ({node.op_type})"


def _input_spec(value: onnx.ValueInfoProto, path: Path) -> tuple[int | None, ...]:
    ttype = value.type.tensor_type
    if not value.type.HasField("tensor_type") or ttype.elem_type not in (FLOAT_TENSOR_TYPES
                                                                        + INDEX_TENSOR_TYPES):
        raise RsimError(
            f"{path}: input {value.name!r} is neither a floating-point nor an integer tensor; "
            "rsim takes float inputs, and integer or boolean ones as indices"
        )
    if not ttype.HasField("shape"):
        raise RsimError(f"{path}: input {value.name!r} has no declared rank; rsim needs it")
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in ttype.shape.dim
    )
