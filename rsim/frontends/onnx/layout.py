"""ONNX layout operators: Concat, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Pad."""

from __future__ import annotations

import math

from rsim.frontends.onnx.registry import converts
from rsim.ops.layout import reshape_target


@converts("Concat")
def _concat(ctx, node, ins, attrs):
    """A constant joined to activations along another axis than the batch is materialised at the
    batch of the first activation by a `batch_constant` layer (a class token)."""
    xs = [ctx.activation(n) for n in ins if n]
    axis = attrs["axis"] % len(ctx.shape(xs[0]))
    activations = [n for n in xs if ctx.is_activation(n)]
    if activations and len(activations) < len(xs) and axis != 0:
        xs = [n if ctx.is_activation(n) else _batch_sized(ctx, n, activations[0]) for n in xs]
    ctx.emit("concat", xs, node.output[0], {"axis": axis})


def _batch_sized(ctx, constant: str, like: str) -> str:
    """`constant` as an activation at the batch of `like`: rows all equal (one row expanded to
    the batch) become that row, repeated to any batch."""
    value = ctx.const(constant, "a Concat operand")
    if value.ndim and len(value) > 1 and ctx.builder.batch_led(like) and (value == value[:1]).all():
        value = value[:1]
    out = ctx.fresh_tensor(constant, "/batch")
    ctx.emit("batch_constant", [like], out, {}, {"value": value}, suffix=f"/{constant}")
    return out


@converts("Flatten")
def _flatten(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    axis = attrs.get("axis", 1)
    ctx.emit("flatten", [x], node.output[0],
             {"axis": axis + len(ctx.shape(x)) if axis < 0 else axis})
    ctx.carry_index(ins[0], node.output[0])


@converts("Reshape")
def _reshape(ctx, node, ins, attrs):
    """A model exported for one batch runs any batch: where the target repeats the input's
    dimensions up to the one that carries the batch, it copies them (0, or under allowzero,
    where 0 is a real size, `copy_leading`); where the batch lands in a target dimension merged
    or split with others (sequence-first attention's heads), that dimension is inferred (-1)."""
    x = ctx.activation(ins[0])
    target = ([int(d) for d in ctx.const(ins[1], "the Reshape shape")] if ctx.opset >= 5
              else list(attrs["shape"]))
    allowzero = bool(attrs.get("allowzero", 0))
    layer_attrs = {"allowzero": allowzero}
    axis = ctx.builder.batch_axis(x)
    in_shape = list(ctx.shape(x))
    inner = None
    if axis is not None and target[:axis + 1] == in_shape[:axis + 1]:
        inner = ctx.batch_inner(x)  # the batch keeps its axis and what is folded behind it
        if allowzero:
            layer_attrs["copy_leading"] = axis + 1
        else:
            target[:axis + 1] = [0] * (axis + 1)
    elif axis is not None:
        try:
            out_shape = reshape_target(in_shape, target, allowzero)
        except ValueError as error:
            raise ctx.error(str(error)) from error
        # the batch, in row-major order, steps by `stride` elements over B values
        stride = ctx.batch_inner(x) * math.prod(in_shape[axis + 1:])
        holder = _batch_holder(out_shape, stride, ctx.builder.batch)
        if holder is not None and -1 not in target and 0 not in target:
            inner = stride // math.prod(out_shape[holder + 1:])
            target[holder] = -1
    ctx.emit("reshape", [x], node.output[0], dict(layer_attrs, shape=tuple(target)))
    if inner is not None:
        ctx.set_batch_inner(node.output[0], inner)
    ctx.carry_index(ins[0], node.output[0])


def _batch_holder(out_shape: tuple[int, ...], stride: int, batch: int) -> int | None:
    """The output axis that holds the batch, which in row-major order steps by `stride`
    elements over `batch` values: the axis whose elements behind it divide the stride and whose
    span covers the batch block. For a batch of 2 or more at most one axis fits; a batch of 1
    fits every axis boundary at the stride, and then nothing tells which (None)."""
    fits = [j for j in range(len(out_shape))
            if stride % math.prod(out_shape[j + 1:]) == 0
            and math.prod(out_shape[j:]) % (stride * batch) == 0]
    return fits[0] if len(fits) == 1 else None


@converts("Transpose")
def _transpose(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    ctx.emit("transpose", [x], node.output[0],
             {"perm": tuple(attrs.get("perm", range(rank - 1, -1, -1)))})
    ctx.carry_index(ins[0], node.output[0])


def _axes(ctx, ins, attrs, what) -> list[int] | None:
    if ctx.opset >= 13:
        axes = ctx.optional_const(ins, 1, f"the {what} axes")
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    return list(attrs["axes"]) if "axes" in attrs else None


@converts("Squeeze")
def _squeeze(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    shape = ctx.shape(x)
    axes = _axes(ctx, ins, attrs, "Squeeze")
    axes = ([i for i, d in enumerate(shape) if d == 1] if axes is None
            else [a % len(shape) for a in axes])
    ctx.emit("squeeze", [x], node.output[0], {"axes": tuple(sorted(axes))})
    ctx.carry_index(ins[0], node.output[0])


@converts("Unsqueeze")
def _unsqueeze(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    axes = _axes(ctx, ins, attrs, "Unsqueeze")
    if axes is None:
        raise ctx.error("Unsqueeze needs axes")
    rank = len(ctx.shape(x)) + len(axes)
    ctx.emit("unsqueeze", [x], node.output[0], {"axes": tuple(sorted(a % rank for a in axes))})
    ctx.carry_index(ins[0], node.output[0])


@converts("Pad")
def _pad(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.error(f"Pad mode {mode!r} is not one of constant, reflect, edge, wrap")
    if ctx.opset < 11:
        flat, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
        axes = list(range(rank))
    else:
        flat = [int(p) for p in ctx.const(ins[1], "the Pad pads")]
        v = ctx.optional_const(ins, 2, "the Pad constant value")
        value = 0.0 if v is None else float(v.reshape(-1)[0]) if v.size else 0.0
        a = ctx.optional_const(ins, 3, "the Pad axes")
        axes = list(range(rank)) if a is None else [int(i) % rank for i in a]
    pads = [(0, 0)] * rank
    for k, axis in enumerate(axes):
        pads[axis] = (flat[k], flat[k + len(axes)])
    ctx.emit("pad", [x], node.output[0], {"pads": tuple(pads), "mode": mode, "value": value})
