"""ONNX normalisation: BatchNormalization (a per-channel affine `batchnorm` layer, which the IR
passes fold into the conv/FC before it), LRN, Softmax, LogSoftmax, LayerNormalization (with its
Mean and InvStdDev outputs), RMSNormalization, GroupNormalization, InstanceNormalization."""

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


@converts("Softmax", "LogSoftmax")
def _softmax(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    axis = attrs.get("axis", 1 if ctx.opset < 13 else -1) % rank
    axes = tuple(range(axis, rank)) if ctx.opset < 13 else (axis,)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    ctx.emit(op, [x], node.output[0], {"axes": axes})


def _scale_params(ctx, ins, what: str, names=("scale", "bias")) -> dict[str, np.ndarray]:
    params = {}
    for position, name in enumerate(names, start=1):
        value = ctx.optional_const(ins, position, f"the {what} {name}")
        if value is not None:
            params[name] = value
    return params


@converts("LayerNormalization", "RMSNormalization")
def _layernorm(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    axis = attrs.get("axis", -1) % len(ctx.shape(x))
    epsilon = float(attrs.get("epsilon", 1e-5))
    if node.op_type == "RMSNormalization":
        params = _scale_params(ctx, ins, "RMSNormalization", ("scale",))
        ctx.emit("rmsnorm", [x], node.output[0], {"axis": axis, "epsilon": epsilon}, params)
        return
    params = _scale_params(ctx, ins, "LayerNormalization")
    ctx.emit("layernorm", [x], node.output[0], {"axis": axis, "epsilon": epsilon}, params)
    for position, stat in ((1, "mean"), (2, "inv_std_dev")):
        name = node.output[position] if position < len(node.output) else ""
        if name and (ctx.uses[name] or name in ctx.graph_outputs):
            ctx.emit("layernorm_stat", [x], name,
                     {"axis": axis, "epsilon": epsilon, "stat": stat}, suffix=f"/{stat}")


@converts("GroupNormalization", "InstanceNormalization")
def _groupnorm(ctx, node, ins, attrs):
    """InstanceNormalization is a group per channel; GroupNormalization before opset 21 holds
    one scale and bias per group, repeated here to every channel of the group."""
    x = ctx.activation(ins[0])
    channels = ctx.shape(x)[1]
    groups = channels if node.op_type == "InstanceNormalization" else int(attrs["num_groups"])
    params = _scale_params(ctx, ins, node.op_type)
    if len(params) != 2:
        raise ctx.error(f"{node.op_type} needs its scale and bias")
    if node.op_type == "GroupNormalization" and ctx.opset < 21:
        params = {k: np.repeat(v.reshape(-1), channels // groups) for k, v in params.items()}
    ctx.emit("groupnorm", [x], node.output[0],
             {"groups": groups, "epsilon": float(attrs.get("epsilon", 1e-5))},
             {k: v.reshape(-1) for k, v in params.items()})
