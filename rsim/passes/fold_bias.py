"""Fold a constant per-channel add or subtract into the bias of the layer before it.

Match: an `add` (constant on either side) or `sub` (constant subtracted) layer with one activation
input, reading the output of a conv, conv_transpose or gemm that nothing else reads, whose constant
is one value per output channel or one value for all (broadcastable along that layer's channel
axis). Transform: the (negated, for sub) constant joins the layer's bias; that layer then writes
the add's output and the add is removed.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from rsim.network import Graph
from rsim.passes.matching import GraphIndex

FOLDS_INTO = ("conv", "conv_transpose", "gemm")


def run(graph: Graph, outputs: Collection[str]) -> Graph:
    index = GraphIndex(graph, outputs)
    for add in [layer for layer in graph.layers if layer.op in ("add", "sub")]:
        if "constant" not in add.params or (add.op == "sub" and add.attrs["constant_first"]):
            continue
        producer = index.sole_producer(add.inputs[0], FOLDS_INTO)
        if producer is None:
            continue
        shape = index.shapes[add.inputs[0]]
        vector = _per_channel(add.params["constant"], shape,
                              len(shape) - 1 if producer.op == "gemm" else 1)
        if vector is None:
            continue
        signed = vector if add.op == "add" else -vector
        bias = producer.params.get("bias")
        producer.params["bias"] = (signed.copy() if bias is None
                                   else (bias + signed).astype(np.float32))
        index.fold_into(producer, add)
    return graph


def _per_channel(constant: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """The constant as one float32 value per channel of `axis`, or None when it varies along
    another axis (or would broadcast the output to a larger shape)."""
    if constant.ndim > len(shape):
        return None
    aligned = (1,) * (len(shape) - constant.ndim) + tuple(constant.shape)
    if any(d != 1 for i, d in enumerate(aligned) if i != axis) or aligned[axis] not in (1,
                                                                                        shape[axis]):
        return None
    return np.broadcast_to(constant.reshape(-1).astype(np.float32), (shape[axis],))
