"""ONNX Resize (opsets 10 on) and Upsample: one `resize` layer whose every resized axis carries
its scale, output size and region of interest, bound at import (the batch axis is never
resized)."""

from __future__ import annotations

import numpy as np

from rsim.frontends.onnx.registry import converts

MODES = ("nearest", "linear", "cubic")


@converts("Resize", "Upsample")
def _resize(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    shape = ctx.shape(x)
    rank = len(shape)
    modern = node.op_type == "Resize" and ctx.opset >= 11
    mode = attrs.get("mode", "nearest")
    if mode == "bilinear":  # Upsample-7's name for linear
        mode = "linear"
    if mode not in MODES:
        raise ctx.error(f"mode {mode!r} is not one of {', '.join(MODES)}")
    axes = [int(a) % rank for a in attrs.get("axes", range(rank))]
    roi = scales = sizes = None
    if modern:
        roi = ctx.optional_const(ins, 1, "the Resize roi")
        scales = ctx.optional_const(ins, 2, "the Resize scales")
        sizes = ctx.optional_const(ins, 3, "the Resize sizes")
    elif node.op_type == "Upsample" and ctx.opset < 9:
        scales = np.array(attrs["scales"], np.float64)
    else:
        scales = ctx.const(ins[1], f"the {node.op_type} scales")
    if scales is not None and scales.size == 0:
        scales = None
    if sizes is not None and sizes.size == 0:
        sizes = None
    in_sizes = [shape[a] for a in axes]
    if sizes is not None:
        sizes = [int(s) for s in sizes.reshape(-1)]
        factors = [s / d for s, d in zip(sizes, in_sizes, strict=True)]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            factor = min(factors) if policy == "not_larger" else max(factors)
            factors = [factor] * len(axes)
            sizes = [int(factor * d + 0.5) for d in in_sizes]
    elif scales is not None:
        factors = [float(s) for s in scales.reshape(-1)]
        sizes = [int(f * d) for f, d in zip(factors, in_sizes, strict=True)]
    else:
        raise ctx.error("Resize needs scales or sizes")
    if roi is not None and roi.size:
        roi = [float(r) for r in roi.reshape(-1)]
        starts, ends = roi[:len(roi) // 2], roi[len(roi) // 2:]
        if len(starts) == rank and len(axes) < rank:
            starts, ends = [starts[a] for a in axes], [ends[a] for a in axes]
    else:
        starts, ends = [0.0] * len(axes), [1.0] * len(axes)
    resized = []
    for axis, factor, size, start, end in zip(axes, factors, sizes, starts, ends, strict=True):
        if factor == 1.0 and size == shape[axis] and (start, end) == (0.0, 1.0):
            continue
        if axis == 0:
            raise ctx.error("it resizes the batch axis; rsim resizes the other axes only")
        resized.append((axis, factor, size, start, end))
    coordinate = attrs.get("coordinate_transformation_mode",
                           "half_pixel" if modern else "asymmetric")
    layer_attrs = {
        "mode": mode, "coordinate_mode": coordinate,
        "nearest_mode": attrs.get("nearest_mode", "round_prefer_floor" if modern else "floor"),
        "cubic_coeff_a": float(attrs.get("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(attrs.get("exclude_outside", 0)),
        "extrapolation_value": float(attrs.get("extrapolation_value", 0.0)),
        "antialias": bool(attrs.get("antialias", 0)), "axes": tuple(resized)}
    ctx.emit("resize", [x], node.output[0], layer_attrs)
