"""ONNX Attention (opset 23): one `attention` layer per output the graph uses (Y, present_key,
present_value, qk_matmul_output)."""

from __future__ import annotations

from rsim.frontends.onnx.registry import converts

ROLES = ("q", "k", "v", "mask", "past_key", "past_value")
OUTPUTS = ("y", "present_key", "present_value", "qk")


@converts("Attention")
def _attention(ctx, node, ins, attrs):
    if len(ins) > 6 and ins[6]:
        raise ctx.error("nonpad_kv_seqlen (an external key/value cache) is not supported")
    named = [(role, name) for role, name in zip(ROLES, ins, strict=False) if name]
    if ("past_key" in dict(named)) != ("past_value" in dict(named)):
        raise ctx.error("past_key and past_value go together")
    if len(ctx.shape(ins[0])) == 3 and not (attrs.get("q_num_heads")
                                           and attrs.get("kv_num_heads")):
        raise ctx.error("3-D Q, K, V need the q_num_heads and kv_num_heads attributes")
    inputs, roles, params = ctx.operands(named)
    mask = dict(named).get("mask")
    mask_bool = mask is not None and (ctx.is_index(mask) or (
        ctx.builder.is_constant(mask) and ctx.builder.constants[mask].dtype == bool))
    softcap = float(attrs.get("softcap", 0.0))
    base = {"roles": roles, "scale": attrs.get("scale"),
            "is_causal": bool(attrs.get("is_causal", 0)),
            "q_num_heads": attrs.get("q_num_heads"), "kv_num_heads": attrs.get("kv_num_heads"),
            "softcap": softcap, "mask_bool": mask_bool,
            "window": (int(attrs.get("left_window_size", -1)),
                       int(attrs.get("right_window_size", -1))),
            "qk_mode": int(attrs.get("qk_matmul_output_mode", 0))}
    for position, output in enumerate(OUTPUTS):
        name = node.output[position] if position < len(node.output) else ""
        if name and (position == 0 or ctx.uses[name] or name in ctx.graph_outputs):
            ctx.emit("attention", inputs, name, dict(base, output=output),
                     params, suffix=f"/{output}" if position else "")
