"""What the passes ask of a graph: the layer writing a tensor, how often a tensor is read, static
shapes at the import batch, and the layer a tensor may be folded into."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from rsim.network import Graph, Layer, Shape


class GraphIndex:
    """Producers, reader counts and shapes of a graph, computed once and kept current by
    `fold_into` as a pass folds layers away."""

    def __init__(self, graph: Graph, outputs: Collection[str]):
        from rsim.passes import resolve

        self.graph = graph
        self.kept = {resolve(graph.aliases, name) for name in outputs}
        self.readers = Counter(t for layer in graph.layers for t in layer.inputs)
        self.producers = {layer.outputs[0]: layer for layer in graph.layers}
        self.shapes: dict[str, Shape] = dict(graph.input_shapes)
        for layer in graph.layers:
            self.shapes[layer.outputs[0]] = layer.infer_shape(
                *(self.shapes[t] for t in layer.inputs))

    def sole_producer(self, tensor: str, ops: Collection[str]) -> Layer | None:
        """The layer writing `tensor` when its op is one of `ops`, exactly one layer reads
        `tensor` and it is no graph output: only then can a later layer fold into it."""
        if self.readers[tensor] != 1 or tensor in self.kept:
            return None
        producer = self.producers.get(tensor)
        return producer if producer is not None and producer.op in ops else None

    def fold_into(self, producer: Layer, folded: Layer) -> None:
        """Remove `folded` (the one reader of `producer`'s output) and make `producer` write
        `folded`'s output; the old name becomes an alias of the new."""
        old, new = producer.outputs[0], folded.outputs[0]
        self.graph.aliases[old] = new
        producer.outputs = (new,)
        self.producers[new] = producer
        del self.producers[old]
        self.readers[old] -= 1
        self.graph.layers = [layer for layer in self.graph.layers if layer is not folded]
