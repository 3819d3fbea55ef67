"""The network IR: layers in topological order over named tensors, with float weights, static
shapes (batch bound per run) and the float reference path.

Conventions the simulator relies on:

- `Layer.op` is one of `rsim.ops.OP_NAMES`; `Layer.inputs` name the activation tensors a layer
  reads (constants live in `Layer.params`, float32 arrays), `Layer.outputs` the one tensor it
  writes. Attribute and parameter layouts are documented in each op's module (`rsim/ops/*.py`):
  conv weight (O, C/groups, kh, kw) with bias (O,) after BatchNorm folding; gemm weight (K, N) so
  y = x @ W + b; pads (top, left, bottom, right).
- `Network.index_inputs` are inputs that hold integers or truth values (token ids, conditions):
  they are fed as integer arrays (or floats holding whole numbers) and reach the layers as int64;
  the frontend lets them feed only ops that take indices.
- The leading axis of every model input is the batch. `Network.shape(name, batch)` gives static
  shapes with the batch bound; the batch may change between runs.
- Folding removes tensors: a BatchNormalization or a constant Add/Sub folded into the conv/FC
  before it makes that layer write the later tensor's name, and Identity/Dropout/Cast outputs are
  replaced by their input. `Network.aliases` maps every removed name to the name that replaces it;
  `run_float(..., collect=True)` reports values under the replacing names only, while graph
  outputs are always reported under the model's own output names.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from formats.errors import RsimError
from rsim.ops import OPS

Shape = tuple[int, ...]
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as error:
        raise RsimError(f"dtype {dtype!r} is not a numpy dtype; use float32 or float64") from error
    if dt not in FLOAT_DTYPES:
        raise RsimError(f"the float reference path runs in float32 or float64, not {dt}")
    return dt


@dataclass(eq=False)
class Layer:
    """One operator application: `op` (a canonical op name) reads `inputs`, writes `outputs`."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    network: Network | None = field(default=None, repr=False)
    _params_by_dtype: dict[np.dtype, dict[str, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    def params_as(self, dtype: Any = np.float32) -> dict[str, np.ndarray]:
        """The layer's params in `dtype` (cached: a float64 run casts each weight once)."""
        dt = _float_dtype(dtype)
        cached = self._params_by_dtype.get(dt)
        if cached is None:
            cached = {k: np.asarray(v, dtype=dt) for k, v in self.params.items()}
            self._params_by_dtype[dt] = cached
        return cached

    def forward(self, *arrays: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """This layer alone, in float (`dtype`), on the given input arrays (one per `inputs`)."""
        dt = _float_dtype(dtype)
        if len(arrays) != len(self.inputs):
            raise RsimError(
                f"layer {self.name!r} ({self.op}) takes {len(self.inputs)} input "
                f"array(s), got {len(arrays)}"
            )
        xs = [a if a.dtype.kind in "iub" else np.asarray(a, dtype=dt)
              for a in map(np.asarray, arrays)]
        y = OPS[self.op].forward(xs, self.attrs, self.params_as(dt))
        return np.asarray(y, dtype=dt)

    def infer_shape(self, *in_shapes: Shape) -> Shape:
        """The output shape for the given input shapes (ValueError when they do not fit)."""
        return tuple(
            int(d) for d in OPS[self.op].infer_shape(list(in_shapes), self.attrs, self.params)
        )

    @property
    def param_count(self) -> int:
        """Number of constant values the layer holds (weights, bias, constants)."""
        return sum(int(v.size) for v in self.params.values())

    def macs(self, batch: int | None = None) -> int:
        """Multiply-accumulates of one run at `batch` (default: the batch bound at import).
        Only conv, conv_transpose, gemm and matmul count MACs; other ops count 0."""
        net = self._require_network()
        in_shapes = [net.shape(t, batch) for t in self.inputs]
        out_shape = net.shape(self.outputs[0], batch)
        return int(OPS[self.op].macs(in_shapes, out_shape, self.attrs, self.params))

    def _require_network(self) -> Network:
        if self.network is None:
            raise RsimError(
                f"layer {self.name!r} does not belong to a Network, so it has no shapes"
            )
        return self.network


@dataclass
class Graph:
    """What a frontend builds once the input shapes are bound: layers, shapes at `import_batch`
    and aliases (the output names are the Network's, known before the build). `batch_note` says
    why another batch may not work (or is None)."""

    layers: list[Layer]
    input_shapes: dict[str, Shape]
    aliases: dict[str, str]
    import_batch: int
    batch_note: str | None = None


Builder = Callable[[dict[str, Shape]], Graph]


class InputTransform(Protocol):
    """What a model does to raw samples before its first layer (a Caffe data layer's
    transform_param): `apply` to a batch, and the sample shape it gives."""

    def apply(self, x: np.ndarray) -> np.ndarray: ...

    def sample_shape(self, stored: tuple[int, ...]) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Scoring:
    """How a model file scores its output (Caffe's Accuracy and loss layers): the tensor they
    read, the top-k its Accuracy layers report, whether a softmax loss is computed on it."""

    prediction: str
    top_k: tuple[int, ...] = (1,)
    softmax_loss: bool = False


@dataclass(frozen=True)
class ModelQuantization:
    """The quantization a model file itself carries (Ristretto's `quantization_param`): the
    shipped accelerator config whose numerics it assumes (`hw`, used when none is given) and
    per-layer qspec entries (`layers`, applied before any qspec the user gives)."""

    hw: str
    layers: tuple[dict, ...]
    source: str


class Network:
    """A loaded model: its layers, tensor shapes, weights and the float reference path.

    Built by a frontend (`rsim.load`). When an input has symbolic dimensions besides the batch and
    no `input_shapes` were given, the layers are built on the first `run_float` (or `bind`).
    """

    def __init__(
        self,
        builder: Builder,
        input_specs: Mapping[str, tuple[int | None, ...]],
        outputs: list[str],
        *,
        source: Path | None = None,
        sha256: str | None = None,
        input_shapes: Mapping[str, Any] | None = None,
        quantization: ModelQuantization | None = None,
        input_transforms: Mapping[str, InputTransform] | None = None,
        scoring: Scoring | None = None,
        notes: tuple[str, ...] = (),
        final_versions: Mapping[str, str] | None = None,
        index_inputs: Collection[str] = (),
    ) -> None:
        self._builder = builder
        self.quantization = quantization
        self.input_transforms = dict(input_transforms or {})
        self.scoring = scoring
        self.notes = notes  # what a user should know about how the model was read
        # tensor -> the tensor holding the final value of the same framework buffer (a Caffe
        # blob that in-place layers overwrite: what Caffe shows after a whole forward pass)
        self.final_versions = dict(final_versions or {})
        self.input_specs = {k: tuple(v) for k, v in input_specs.items()}
        self.index_inputs = frozenset(index_inputs)
        self.inputs: list[str] = list(input_specs)
        self.outputs: list[str] = list(outputs)
        self.source = source
        self.sha256 = sha256
        self._graph: Graph | None = None
        self._shape_cache: dict[int, dict[str, Shape]] = {}
        self._last_use: dict[int, list[str]] = {}
        bound = self._resolve_input_shapes(input_shapes or {})
        if bound is not None:
            self._build(bound)

    # ----- binding -----------------------------------------------------------------------------
    def _resolve_input_shapes(self, given: Mapping[str, Any]) -> dict[str, Shape] | None:
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise RsimError(
                f"input_shapes names {unknown}, but the model's inputs are {self.inputs}"
            )
        bound: dict[str, Shape] = {}
        for name, spec in self.input_specs.items():
            if name in given:
                try:
                    shape = tuple(int(d) for d in given[name])
                except (TypeError, ValueError):
                    raise RsimError(
                        f"input_shapes[{name!r}] = {given[name]!r} is not a sequence of integers"
                    ) from None
                if len(shape) != len(spec) or any(
                    s is not None and s != d
                    for i, (s, d) in enumerate(zip(spec, shape, strict=True))
                    if i
                ):
                    raise RsimError(
                        f"input_shapes[{name!r}] = {shape} does not fit the model's "
                        f"input {name!r} of shape {_spec_text(spec)}"
                    )
                bound[name] = shape
            elif any(d is None for d in spec[1:]):
                return None
            else:
                bound[name] = (
                    ((1 if spec[0] is None else spec[0]),) + tuple(spec[1:]) if spec else ()
                )
        return bound

    def _build(self, bound: dict[str, Shape]) -> None:
        graph = self._builder(bound)
        for layer in graph.layers:
            layer.network = self
        self._graph = graph
        self._shape_cache.clear()
        self._last_use = _last_uses(graph.layers)

    def bind(self, input_shapes: Mapping[str, Any]) -> None:
        """Bind symbolic input dimensions (the leading axis stays free to change per run).
        Once bound, the non-batch dimensions are fixed for the life of the Network."""
        bound = self._resolve_input_shapes(input_shapes)
        if self._graph is not None:
            for name, shape in (bound or {}).items():
                if tuple(shape[1:]) != tuple(self._graph.input_shapes[name][1:]):
                    raise RsimError(
                        f"input {name!r} is already bound to "
                        f"{_spec_text(('N',) + self._graph.input_shapes[name][1:])}; "
                        "load the model again to bind other dimensions"
                    )
            return
        if bound is None:
            missing = [n for n in self.inputs if n not in input_shapes]
            raise RsimError(f"input_shapes must give the symbolic dimensions of inputs {missing}")
        self._build(bound)

    @property
    def is_bound(self) -> bool:
        """Whether every input dimension is known (so layers and shapes exist)."""
        return self._graph is not None

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            dims = ", ".join(f"{n}: {_spec_text(s)}" for n, s in self.input_specs.items())
            raise RsimError(
                f"{self.source or 'the model'} has symbolic input dimensions ({dims}); "
                "pass input_shapes={name: shape} to rsim.load or run it once to bind them"
            )
        return self._graph

    # ----- structure ---------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """Layers in topological order."""
        return self.graph.layers

    @property
    def aliases(self) -> dict[str, str]:
        """Removed tensor name -> the tensor name that now carries its value."""
        return self.graph.aliases

    @property
    def input_shapes(self) -> dict[str, Shape]:
        """Input shapes as bound at import (leading axis: the import batch)."""
        return self.graph.input_shapes

    @property
    def import_batch(self) -> int:
        return self.graph.import_batch

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise RsimError(f"no layer named {name!r}; layers are {[x.name for x in self.layers]}")

    def resolve(self, tensor: str) -> str:
        """The name under which `tensor`'s value is kept (itself, or what replaced it)."""
        return self.aliases.get(tensor, tensor)

    def shapes(self, batch: int | None = None) -> dict[str, Shape]:
        """Every kept tensor's static shape with the batch bound to `batch`."""
        graph = self.graph
        batch = graph.import_batch if batch is None else int(batch)
        if batch < 1:
            raise RsimError(f"batch must be at least 1, got {batch}")
        cached = self._shape_cache.get(batch)
        if cached is not None:
            return cached
        shapes = {
            n: with_batch(s, graph.import_batch, batch) for n, s in graph.input_shapes.items()
        }
        for layer in graph.layers:
            try:
                shapes[layer.outputs[0]] = layer.infer_shape(*(shapes[t] for t in layer.inputs))
            except ValueError as error:
                note = (
                    f" ({graph.batch_note})"
                    if graph.batch_note and batch != graph.import_batch
                    else ""
                )
                raise RsimError(
                    f"layer {layer.name!r} ({layer.op}) cannot run a batch of {batch}: "
                    f"{error}{note}"
                ) from error
        self._shape_cache[batch] = shapes
        return shapes

    def shape(self, tensor: str, batch: int | None = None) -> Shape:
        """Static shape of `tensor` (a model tensor name, aliases resolved) at `batch`."""
        shapes = self.shapes(batch)
        name = self.resolve(tensor)
        if name not in shapes:
            raise RsimError(f"no tensor named {tensor!r} in the network")
        return shapes[name]

    def macs(self, batch: int | None = None) -> int:
        return sum(layer.macs(batch) for layer in self.layers)

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    # ----- float reference path ------------------------------------------------------------------
    def run_float(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        collect: bool = False,
        dtype: Any = np.float32,
    ) -> dict[str, np.ndarray]:
        """Run the network in float (`dtype`: float32 or float64).

        `inputs`: one array for a single-input model, or a dict by input name; the leading axis
        is the batch. Returns the graph outputs by the model's output names, or with
        `collect=True` every tensor the IR keeps (inputs and layer outputs; removed tensors are
        under the names in `aliases`) plus the graph outputs.
        """
        dt = _float_dtype(dtype)
        feeds = self._check_feeds(inputs)
        if self._graph is None:
            for name, array in feeds.items():
                spec = self.input_specs[name]
                if array.ndim != len(spec) or any(
                    s is not None and s != d for s, d in zip(spec[1:], array.shape[1:], strict=True)
                ):
                    raise RsimError(
                        f"input {name!r} has shape {array.shape}; the model expects "
                        f"{_spec_text(('N',) + spec[1:])} (? = any size, bound by this first run)"
                    )
            self.bind({n: a.shape for n, a in feeds.items()})
        batch = self._check_feed_shapes(feeds)
        self.shapes(batch)
        env: dict[str, np.ndarray] = {
            n: a.astype(np.int64) if n in self.index_inputs else np.asarray(a, dtype=dt)
            for n, a in feeds.items()}
        keep = {self.resolve(o) for o in self.outputs}
        last_use = {} if collect else self._last_use
        for index, layer in enumerate(self.layers):
            env[layer.outputs[0]] = layer.forward(*(env[t] for t in layer.inputs), dtype=dt)
            for t in last_use.get(index, ()):
                if t not in keep:
                    del env[t]
        result = dict(env) if collect else {}
        for name in self.outputs:
            result[name] = env[self.resolve(name)]
        return result

    def _check_feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        elif len(self.inputs) == 1:
            feeds = {self.inputs[0]: inputs}
        else:
            raise RsimError(
                f"the model has {len(self.inputs)} inputs {self.inputs}: pass a dict by input name"
            )
        missing = [n for n in self.inputs if n not in feeds]
        extra = [n for n in feeds if n not in self.inputs]
        if missing or extra:
            raise RsimError(
                f"inputs must be exactly {self.inputs}; missing {missing}, unknown {extra}"
            )
        for name, array in feeds.items():
            if not isinstance(array, np.ndarray):
                raise RsimError(f"input {name!r} must be a numpy array, got {type(array).__name__}")
            if name in self.index_inputs:
                if array.dtype.kind not in "iubf" or (
                        array.dtype.kind == "f" and not np.array_equal(array, np.trunc(array))):
                    raise RsimError(f"input {name!r} takes integers (indices); got dtype "
                                    f"{array.dtype}" + (" holding fractions"
                                                        if array.dtype.kind == "f" else ""))
            elif array.dtype.kind != "f":
                raise RsimError(
                    f"input {name!r} has dtype {array.dtype}; the model takes floating-"
                    f"point data (e.g. x.astype(np.float32))"
                )
        return feeds

    def _check_feed_shapes(self, feeds: Mapping[str, np.ndarray]) -> int:
        """The run's batch: the first input's leading axis. Inputs whose leading axis was the
        import batch take the run's batch; any other input must keep its import shape."""
        graph = self.graph
        first = feeds[self.inputs[0]]
        batch = first.shape[0] if first.ndim else graph.import_batch
        for name in self.inputs:
            want, got = graph.input_shapes[name], tuple(feeds[name].shape)
            batched = bool(want) and want[0] == graph.import_batch
            expected = ((batch,) + tuple(want[1:])) if batched else tuple(want)
            if got != expected:
                shown = ("N",) + tuple(want[1:]) if batched else tuple(want)
                raise RsimError(
                    f"input {name!r} has shape {got}; the model expects "
                    f"{_spec_text(shown)}"
                    + (" (N = the batch, the same for every batched input)" if batched else "")
                )
        return batch


def with_batch(shape: Shape, import_batch: int, batch: int) -> Shape:
    """`shape` with its leading axis rebound to `batch` when that axis is the import batch (a
    tensor whose leading axis is something else does not carry the batch and keeps its shape)."""
    if not shape or shape[0] != import_batch:
        return shape
    return (batch,) + tuple(shape[1:])


def _last_uses(layers: list[Layer]) -> dict[int, list[str]]:
    """Layer index -> the tensors no later layer reads, which run_float frees once that layer
    has run (computed once per build: the layers do not change after it)."""
    last: dict[str, int] = {}
    for index, layer in enumerate(layers):
        for t in layer.inputs:
            last[t] = index
    by_layer: dict[int, list[str]] = {}
    for t, index in last.items():
        by_layer.setdefault(index, []).append(t)
    return by_layer


def _spec_text(spec: tuple) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in spec) + "]"
