"""`GraphBuilder`: what every frontend uses to turn its framework's operators into IR layers.

A frontend translates; the builder keeps the bookkeeping every frontend needs: unique layer and
tensor names, the constants a translation may read (weights, shape values), every tensor's shape
at the import batch and at the import batch + 1 (which tells the tensors that carry the batch on
their leading axis, so a model exported for batch 1 runs any batch), aliases, and the IR rewrites:
a layer whose inputs are all constants is folded at once (`rsim.passes.fold_constants`), the graph
passes (`rsim.passes`) run in `finish`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from formats.errors import RsimError
from rsim.network import Graph, Layer, Shape, with_batch
from rsim.passes import fold_constants, resolve, run_passes


class GraphBuilder:
    """IR layers emitted in topological order over named tensors, at bound input shapes.

    `error(message)` makes the frontend's error for the operator being translated (it knows the
    file and the node); the builder raises it when a layer does not fit its inputs.
    """

    def __init__(self, bound: dict[str, Shape], error: Callable[[str], RsimError]):
        self.input_shapes = dict(bound)
        self.error = error
        first = next(iter(bound.values()), ())
        self.batch = first[0] if first else 1
        self.shapes: dict[str, Shape] = dict(bound)
        # shapes at batch + 1 tell which tensors carry the batch on their leading axis
        self.alt_shapes: dict[str, Shape | None] = {
            n: with_batch(s, self.batch, self.batch + 1) for n, s in bound.items()
        }
        self.constants: dict[str, np.ndarray] = {}
        self.aliases: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.batch_note: str | None = None
        self.layer_name = ""  # base name of the layers the current operator becomes
        self._names: set[str] = set()

    # ----- tensors ---------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        return resolve(self.aliases, name)

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def is_activation(self, name: str) -> bool:
        return name in self.shapes

    def shape(self, name: str) -> Shape:
        """The shape of an activation (at the import batch) or of a constant."""
        if name in self.constants:
            return tuple(self.constants[name].shape)
        return self.shapes[name]

    def alias(self, name: str, target: str) -> None:
        """`name` carries the same value as `target` (a constant, or an activation)."""
        if target in self.constants:
            self.constants[name] = self.constants[target]
        else:
            self.aliases[name] = target

    def fresh_name(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def fresh_tensor(self, base: str, suffix: str) -> str:
        name = base + suffix
        while name in self.shapes or name in self.constants:
            name += "_"
        return name

    def batch_led(self, name: str) -> bool:
        """Whether the tensor carries the batch on its leading axis."""
        shape, alt = self.shapes.get(name), self.alt_shapes.get(name)
        return (bool(shape) and alt is not None and shape[0] == self.batch
                and alt[0] == self.batch + 1 and tuple(alt[1:]) == tuple(shape[1:]))

    def batch_axis(self, name: str) -> int | None:
        """The one axis of the tensor that carries the batch (its size is the batch, or the
        batch times other dimensions folded into it), or None."""
        shape, alt = self.shapes.get(name), self.alt_shapes.get(name)
        if not shape or alt is None or len(alt) != len(shape):
            return None
        moved = [i for i, (a, b) in enumerate(zip(shape, alt, strict=True)) if a != b]
        if len(moved) != 1:
            return None
        size, other = shape[moved[0]], alt[moved[0]]
        folded = size // self.batch
        return moved[0] if size == folded * self.batch and other == folded * (self.batch + 1) \
            else None

    # ----- layers ----------------------------------------------------------------------------
    def emit(self, op: str, inputs: list[str], output: str, attrs: dict | None = None,
             params: dict[str, np.ndarray] | None = None, suffix: str = "") -> Layer | None:
        """Add a layer `op` reading `inputs` and writing `output`; a layer whose inputs are all
        (floating-point) constants is folded into a constant instead (returns None)."""
        attrs, params = attrs or {}, params or {}
        constant = [name for name in inputs if name in self.constants]
        if constant and len(constant) == len(inputs):
            arrays = [self.constants[name] for name in inputs]
            if fold_constants.foldable(arrays):
                try:
                    self.constants[output] = fold_constants.fold(op, arrays, attrs, params)
                except (ValueError, TypeError) as error:
                    raise self.error(str(error)) from error
                return None
        if constant:
            raise self.error(f"input {constant[0]!r} is a constant where rsim needs an "
                             "activation")
        layer = Layer(self.fresh_name(self.layer_name + suffix), op, tuple(inputs), (output,),
                      attrs, {k: np.require(np.asarray(v, dtype=np.float32), requirements="C")
                              for k, v in params.items()})  # (keeps 0-d constants 0-d)
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
                    f"({layer.op}) carries that batch in a constant rsim cannot rewrite: {error}")
        self.layers.append(layer)
        return layer

    def finish(self, outputs: Collection[str], where: str) -> Graph:
        """The graph, after the IR passes; `where` names the model in errors."""
        for name in outputs:
            kept = self.resolve(name)
            if kept in self.constants and kept not in self.shapes:
                raise RsimError(f"{where}: graph output {name!r} is a constant; rsim needs every "
                                "output to depend on an input")
        graph = Graph(self.layers, dict(self.input_shapes), dict(self.aliases), self.batch,
                      self.batch_note)
        return run_passes(graph, outputs)
