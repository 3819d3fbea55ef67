"""Graph rewrites over the IR, shared by every frontend: frontends only translate, then
`run_passes` applies these in order.

- `identities`: identity layers (Dropout, Identity, Caffe Split) removed, readers rewired;
- `fold_batchnorm`: a per-channel affine (BatchNormalization, Caffe BatchNorm/Scale) folded into
  the convolution or FC layer before it, when nothing else reads that layer's output;
- `fold_bias`: a constant per-channel add/sub after a convolution or FC layer joins its bias.

`fold_constants` is the one rewrite that runs while a frontend builds the graph
(`rsim.frontends.builder.GraphBuilder.emit`): a layer whose inputs are all constants becomes a
constant at once, because a frontend may need that value to translate what follows (a shape, a
weight).

A new rewrite is a module here with one `run(graph, outputs) -> Graph` function (match, then
transform), added to `PASSES`, with a test on a tiny hand-built graph.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from rsim.network import Graph
from rsim.passes import fold_batchnorm, fold_bias, identities

Pass = Callable[[Graph, Collection[str]], Graph]
PASSES: tuple[Pass, ...] = (identities.run, fold_batchnorm.run, fold_bias.run)


def run_passes(graph: Graph, outputs: Collection[str]) -> Graph:
    """Every pass in order; `outputs` are the graph output names (never folded away)."""
    for rewrite in PASSES:
        graph = rewrite(graph, outputs)
    graph.aliases = {name: resolve(graph.aliases, name) for name in graph.aliases}
    return graph


def resolve(aliases: dict[str, str], name: str) -> str:
    """The tensor that carries `name`'s value after any chain of aliases."""
    while name in aliases:
        name = aliases[name]
    return name
