"""ONNX normalisation: BatchNormalization (a per-channel affine `batchnorm` layer, which the IR
passes fold into the conv/FC before it), LRN, Softmax."""

from __future__ import annotations

import numpy as np

from rsim.frontends.onnx.registry import converts


@converts("BatchNormalization")
def _batchnorm(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    if attrs.get("training_mode", 0):
        raise ctx.error("training_mode=1 computes batch statistics; rsim runs inference only")
    if ctx.used_extra_output(node) is not None:
        raise ctx.error("its running-statistics outputs are used; rsim runs inference only")
    if not attrs.get("spatial", 1):
        raise ctx.error("spatial=0 (per-activation statistics) is not supported")
    gamma, beta, mean, var = (ctx.const(n, "BatchNormalization statistics").astype(np.float64)
                              for n in ins[1:5])
    scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
    ctx.emit("batchnorm", [x], node.output[0], {},
             {"scale": scale, "shift": beta - mean * scale})


@converts("LRN")
def _lrn(ctx, node, ins, attrs):
    ctx.emit("lrn", [ctx.activation(ins[0])], node.output[0],
             {"size": int(attrs["size"]), "alpha": float(attrs.get("alpha", 1e-4)),
              "beta": float(attrs.get("beta", 0.75)), "bias": float(attrs.get("bias", 1.0))})


@converts("Softmax")
def _softmax(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    axis = attrs.get("axis", 1 if ctx.opset < 13 else -1) % rank
    axes = tuple(range(axis, rank)) if ctx.opset < 13 else (axis,)
    ctx.emit("softmax", [x], node.output[0], {"axes": axes})
