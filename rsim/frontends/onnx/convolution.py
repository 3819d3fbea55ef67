"""ONNX convolutions and pooling: Conv, ConvTranspose, MaxPool, AveragePool, GlobalAveragePool,
GlobalMaxPool."""

from __future__ import annotations

import numpy as np

from rsim.frontends.onnx.registry import converts, unary


def split_same_pad(total: int, auto_pad: str) -> tuple[int, int]:
    """(begin, end) padding of one axis under auto_pad SAME_*: an odd cell goes to the end for
    SAME_UPPER, to the beginning for SAME_LOWER (the ONNX rule)."""
    small, big = total // 2, total - total // 2
    return (small, big) if auto_pad == "SAME_UPPER" else (big, small)


def spatial(ctx, attrs: dict, kernel: tuple[int, ...], in_shape, what: str) -> dict:
    """The IR window attributes (kernel, strides, dilations, pads) of a 2-D conv or pool node."""
    if len(kernel) != 2 or len(in_shape) != 4:
        raise ctx.error(f"rsim supports 2-D {what} only (NCHW input with a 2-D kernel), got "
                        f"kernel {tuple(kernel)} on input {tuple(in_shape)}")
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for axis in (0, 1):
            size = in_shape[2 + axis]
            out = -(-size // strides[axis])
            total = max((out - 1) * strides[axis] + dilations[axis] * (kernel[axis] - 1) + 1
                        - size, 0)
            pads.append(split_same_pad(total, auto_pad))
        pad4 = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    elif auto_pad == "VALID":
        pad4 = (0, 0, 0, 0)
    elif auto_pad == "NOTSET":
        pad4 = tuple(attrs.get("pads", (0, 0, 0, 0)))
    else:
        raise ctx.error(f"auto_pad {auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, "
                        "SAME_LOWER")
    return {"kernel": tuple(kernel), "strides": strides, "dilations": dilations, "pads": pad4}


def conv_params(ctx, ins: list[str], what: str) -> dict[str, np.ndarray]:
    """A Conv/ConvTranspose node's constant weight and optional bias as layer params."""
    params = {"weight": ctx.const(ins[1], f"the {what} weight")}
    bias = ctx.optional_const(ins, 2, f"the {what} bias")
    if bias is not None:
        params["bias"] = bias
    return params


@converts("Conv")
def _conv(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    params = conv_params(ctx, ins, "Conv")
    kernel = tuple(attrs.get("kernel_shape", params["weight"].shape[2:]))
    window = spatial(ctx, attrs, kernel, ctx.shape(x), "Conv")
    ctx.emit("conv", [x], node.output[0], dict(window, groups=attrs.get("group", 1)), params)


@converts("ConvTranspose")
def _conv_transpose(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    params = conv_params(ctx, ins, "ConvTranspose")
    kernel = tuple(attrs.get("kernel_shape", params["weight"].shape[2:]))
    in_shape = ctx.shape(x)
    window = spatial(ctx, dict(attrs, auto_pad="NOTSET"), kernel, in_shape, "ConvTranspose")
    out_pad = tuple(attrs.get("output_padding", (0, 0)))
    s, d = window["strides"], window["dilations"]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    target = attrs.get("output_shape")
    if target is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [in_shape[2 + a] * s[a] for a in (0, 1)]
    if target is not None:
        target = tuple(target)[-2:]
        pads = [split_same_pad(s[a] * (in_shape[2 + a] - 1) + out_pad[a]
                               + d[a] * (kernel[a] - 1) + 1 - target[a], auto_pad)
                for a in (0, 1)]
        if min(pads[0][0], pads[1][0]) < 0:
            raise ctx.error(f"output_shape {target} needs negative leading padding, which rsim "
                            "does not support")
        window["pads"] = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    ctx.emit("conv_transpose", [x], node.output[0],
             dict(window, groups=attrs.get("group", 1), output_padding=out_pad), params)


@converts("MaxPool", "AveragePool")
def _pool(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    if ctx.used_extra_output(node) is not None:
        raise ctx.error("its Indices output is used; rsim computes pooled values only")
    window = spatial(ctx, attrs, tuple(attrs["kernel_shape"]), ctx.shape(x), node.op_type)
    window["ceil_mode"] = bool(attrs.get("ceil_mode", 0))
    op = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    if op == "avgpool":
        window["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
    ctx.emit(op, [x], node.output[0], window)


unary("GlobalAveragePool", "global_avgpool")
unary("GlobalMaxPool", "global_maxpool")
