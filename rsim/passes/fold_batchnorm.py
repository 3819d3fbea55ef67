"""Fold a per-channel affine into the convolution or FC layer before it.

Match: a `batchnorm` layer (y = x * scale + shift per channel: ONNX BatchNormalization, Caffe
BatchNorm and Scale) reading the output of a conv, conv_transpose or gemm (2-D output) that
nothing else reads. Transform: the weights are scaled per output channel and the bias becomes
bias * scale + shift (in float64, stored float32); that layer then writes the batchnorm's output
and the batchnorm is removed.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from rsim.network import Graph, Layer, Shape
from rsim.passes.matching import GraphIndex

FOLDS_INTO = ("conv", "conv_transpose", "gemm")


def run(graph: Graph, outputs: Collection[str]) -> Graph:
    index = GraphIndex(graph, outputs)
    for norm in [layer for layer in graph.layers if layer.op == "batchnorm"]:
        producer = index.sole_producer(norm.inputs[0], FOLDS_INTO)
        if producer is not None and fold_channel_affine(
                producer, index.shapes[norm.inputs[0]], norm.params["scale"].astype(np.float64),
                norm.params["shift"].astype(np.float64)):
            index.fold_into(producer, norm)
    return graph


def fold_channel_affine(layer: Layer, out_shape: Shape, scale: np.ndarray,
                        shift: np.ndarray) -> bool:
    """Fold y = out * scale + shift (axis 1 of the layer's output) into its weight and bias;
    False (nothing changed) when the layer's channel axis is not axis 1."""
    w = layer.params["weight"].astype(np.float64)
    bias = layer.params.get("bias", np.zeros(out_shape[1], np.float32)).astype(np.float64)
    if layer.op == "conv":
        w = w * scale.reshape(-1, 1, 1, 1)
    elif layer.op == "conv_transpose":
        g = layer.attrs["groups"]
        c_in, per_group = w.shape[:2]
        w = (w.reshape(g, c_in // g, per_group, *w.shape[2:])
             * scale.reshape(g, 1, per_group, 1, 1)).reshape(w.shape)
    elif len(out_shape) == 2:
        w = w * scale.reshape(1, -1)
    else:
        return False
    layer.params["weight"] = w.astype(np.float32)
    layer.params["bias"] = (bias * scale + shift).astype(np.float32)
    return True
