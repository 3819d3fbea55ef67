"""Remove identity layers: match a layer of op `identity`; transform: its readers read its input
instead and its output name becomes an alias of the input."""

from __future__ import annotations

from collections.abc import Collection

from rsim.network import Graph


def run(graph: Graph, outputs: Collection[str]) -> Graph:
    from rsim.passes import resolve

    kept = []
    for layer in graph.layers:
        if layer.op == "identity":
            graph.aliases[layer.outputs[0]] = resolve(graph.aliases, layer.inputs[0])
        else:
            layer.inputs = tuple(resolve(graph.aliases, t) for t in layer.inputs)
            kept.append(layer)
    graph.layers = kept
    return graph
