"""ONNX reductions: ReduceSum, ReduceMean, ReduceMax, ArgMax, TopK."""

from __future__ import annotations

from rsim.frontends.onnx.registry import converts

# the opset from which each reduction takes its axes as an input instead of an attribute
AXES_INPUT_FROM = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18}
_OPS = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max"}


@converts(*_OPS)
def _reduce(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    rank = len(ctx.shape(x))
    if ctx.opset >= AXES_INPUT_FROM[node.op_type]:
        given = ctx.optional_const(ins, 1, f"the {node.op_type} axes")
        axes = None if given is None else [int(a) for a in given.reshape(-1)]
    else:
        axes = list(attrs["axes"]) if "axes" in attrs else None
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            ctx.emit("identity", [x], node.output[0])
            return
        axes = list(range(rank))
    ctx.emit(_OPS[node.op_type], [x], node.output[0],
             {"axes": tuple(sorted({a % rank for a in axes})),
              "keepdims": bool(attrs.get("keepdims", 1))})


@converts("ArgMax")
def _argmax(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    ctx.emit("argmax", [x], node.output[0],
             {"axis": attrs.get("axis", 0) % len(ctx.shape(x)),
              "keepdims": bool(attrs.get("keepdims", 1)),
              "select_last_index": bool(attrs.get("select_last_index", 0))})
    ctx.mark_index(node.output[0])


@converts("TopK")
def _topk(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    k = (int(ctx.const(ins[1], "the TopK k").reshape(-1)[0]) if ctx.opset >= 10
         else int(attrs["k"]))
    base = {"k": k, "axis": attrs.get("axis", -1) % len(ctx.shape(x)),
            "largest": bool(attrs.get("largest", 1))}
    for position, output in enumerate(("values", "indices")):
        name = node.output[position] if position < len(node.output) else ""
        if name and (position == 0 or ctx.used_extra_output(node) == name):
            ctx.emit("topk", [x], name, dict(base, output=output), suffix=f"/{output}"
                     if position else "")
    if ctx.used_extra_output(node) is not None:
        ctx.mark_index(node.output[1])
