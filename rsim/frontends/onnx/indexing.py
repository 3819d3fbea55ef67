"""ONNX operators that select, repeat or compare: Gather, Slice, Split, Expand, Tile,
DepthToSpace, SpaceToDepth (a reshape, a transpose and a reshape), Where, Equal, and
ConstantOfShape and Range (folded when their inputs are constant; an output whose shape would
follow computed values is refused)."""

from __future__ import annotations

import numpy as np

from rsim.frontends.onnx.registry import converts


@converts("Gather")
def _gather(ctx, node, ins, attrs):
    rank = len(ctx.shape(ins[0]))
    inputs, roles, params = ctx.operands([("data", ins[0]), ("indices", ins[1])])
    ctx.emit("gather", inputs, node.output[0],
             {"axis": attrs.get("axis", 0) % rank, "roles": roles}, params)
    if ctx.is_index(ins[0]):
        ctx.mark_index(node.output[0])


@converts("Slice")
def _slice(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    if ctx.opset >= 10:
        starts = ctx.const(ins[1], "the Slice starts").reshape(-1)
        ends = ctx.const(ins[2], "the Slice ends").reshape(-1)
        axes = ctx.optional_const(ins, 3, "the Slice axes")
        steps = ctx.optional_const(ins, 4, "the Slice steps")
    else:
        starts, ends = np.array(attrs["starts"]), np.array(attrs["ends"])
        axes = np.array(attrs["axes"]) if "axes" in attrs else None
        steps = None
    axes = range(len(starts)) if axes is None else axes.reshape(-1)
    steps = np.ones(len(starts), np.int64) if steps is None else steps.reshape(-1)
    slices = []
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        if int(step) == 0:
            raise ctx.error("a Slice step is 0")
        # Python slices clamp out-of-range bounds as ONNX does (INT64_MAX: to the end)
        slices.append((int(axis) % rank, int(start), int(end), int(step)))
    ctx.emit("slice", [x], node.output[0], {"slices": tuple(slices)})
    ctx.carry_index(ins[0], node.output[0])


@converts("Split")
def _split(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    shape = ctx.shape(x)
    axis = attrs.get("axis", 0) % len(shape)
    outputs = [o for o in node.output]
    if ctx.opset >= 13:
        given = ctx.optional_const(ins, 1, "the Split sizes")
    else:
        given = np.array(attrs["split"]) if "split" in attrs else None
    size = shape[axis]
    if given is not None:
        sizes = [int(s) for s in given.reshape(-1)]
    else:
        parts = len(outputs) if "num_outputs" not in attrs else int(attrs["num_outputs"])
        chunk = -(-size // parts)
        sizes = [min(chunk, size - k * chunk) for k in range(parts)]
    if sum(sizes) != size or len(sizes) != len(outputs):
        raise ctx.error(f"split sizes {sizes} do not divide axis {axis} of shape {shape} into "
                        f"{len(outputs)} outputs")
    start = 0
    for k, (output, part) in enumerate(zip(outputs, sizes, strict=True)):
        if output:
            ctx.emit("slice", [x], output, {"slices": ((axis, start, start + part, 1),)},
                     suffix=f"/{k}" if k else "")
            ctx.carry_index(ins[0], output)
        start += part


@converts("Expand")
def _expand(ctx, node, ins, attrs):
    """Dimensions of the target equal to the input's become 1 (the same under broadcasting),
    so an expand to a literal batch follows the run's batch."""
    x = ctx.activation(ins[0])
    shape = ctx.shape(x)
    target = [int(d) for d in ctx.const(ins[1], "the Expand shape").reshape(-1)]
    rank = max(len(shape), len(target))
    aligned = (1,) * (rank - len(shape)) + tuple(shape)
    target = [1] * (rank - len(target)) + target
    target = [1 if t == d else t for t, d in zip(target, aligned, strict=True)]
    ctx.emit("expand", [x], node.output[0], {"shape": tuple(target)})
    ctx.carry_index(ins[0], node.output[0])


@converts("Tile")
def _tile(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    repeats = tuple(int(r) for r in ctx.const(ins[1], "the Tile repeats").reshape(-1))
    ctx.emit("tile", [x], node.output[0], {"repeats": repeats})
    ctx.carry_index(ins[0], node.output[0])


@converts("DepthToSpace", "SpaceToDepth")
def _depth_space(ctx, node, ins, attrs):
    """A reshape, a transpose and a reshape (the batch copied by 0 in both targets)."""
    x = ctx.activation(ins[0])
    _, c, h, w = ctx.shape(x)
    b = int(attrs["blocksize"])
    mode = attrs.get("mode", "DCR")
    if node.op_type == "DepthToSpace":
        if mode == "DCR":
            split, perm = (0, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
        else:
            split, perm = (0, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
        final = (0, c // (b * b), h * b, w * b)
    else:
        split = (0, c, h // b, b, w // b, b)
        perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
        final = (0, c * b * b, h // b, w // b)
    steps = [("reshape", {"shape": split}), ("transpose", {"perm": perm}),
             ("reshape", {"shape": final})]
    current = x
    for k, (op, step_attrs) in enumerate(steps):
        target = node.output[0] if k == 2 else ctx.fresh_tensor(node.output[0], f"/{op}{k}")
        ctx.emit(op, [current], target, step_attrs, suffix="" if k == 2 else f"/{op}{k}")
        current = target


@converts("Where")
def _where(ctx, node, ins, attrs):
    """The value operands go first among the layer's inputs, so its format follows data."""
    named = [("x", ins[1]), ("y", ins[2]), ("condition", ins[0])]
    inputs, roles, params = ctx.operands(named)
    ctx.emit("where", inputs, node.output[0], {"roles": roles}, params)


@converts("Equal")
def _equal(ctx, node, ins, attrs):
    inputs, roles, params = ctx.operands([("a", ins[0]), ("b", ins[1])])
    ctx.emit("equal", inputs, node.output[0], {"roles": roles}, params)
    ctx.mark_index(node.output[0])


@converts("ConstantOfShape", "Range")
def _value_shaped(ctx, node, ins, attrs):
    if all(ctx.builder.is_constant(n) for n in ins if n):  # float constants: onnx's own rules
        return ctx.evaluate(node, ins)
    raise ctx.error(f"its output's shape follows the values of {ins[0]!r}, which are computed "
                    "from the model's inputs; rsim's layers have static shapes")
