"""ONNX matrix products: Gemm and MatMul (a constant right-hand matrix makes an FC `gemm` layer,
two activations a `matmul`)."""

from __future__ import annotations

import numpy as np

from rsim.frontends.onnx.registry import converts


def _as_row_vector(c: np.ndarray, n: int) -> np.ndarray | None:
    """C as an (N,) bias when it is the same for every row (scalar, (N,), (1, N)), else None."""
    aligned = (1,) * (2 - c.ndim) + tuple(c.shape) if c.ndim <= 2 else None
    if aligned is None or aligned[0] != 1 or aligned[1] not in (1, n):
        return None
    return np.broadcast_to(c.reshape(-1), (n,)).copy()


def _transpose(ctx, x: str, suffix: str) -> str:
    out = ctx.fresh_tensor(x, suffix)
    ctx.emit("transpose", [x], out, {"perm": (1, 0)}, suffix=suffix)
    return out


@converts("Gemm")
def _gemm(ctx, node, ins, attrs):
    a = ctx.activation(ins[0])
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if len(ctx.shape(a)) != 2:
        raise ctx.error(f"Gemm takes a 2-D input, got shape {ctx.shape(a)}")
    if attrs.get("transA", 0):
        a = _transpose(ctx, a, "/transpose_a")
    c = ctx.optional_const(ins, 2, "the Gemm bias C")
    out = node.output[0]
    if not ctx.is_activation(ins[1]):
        b = ctx.const(ins[1], "the Gemm B").astype(np.float64)
        weight = (b.T if attrs.get("transB", 0) else b) * alpha
        params = {"weight": weight}
        bias = (None if c is None
                else _as_row_vector(beta * c.astype(np.float64), weight.shape[1]))
        if bias is not None:
            params["bias"] = bias
        if c is None or bias is not None:
            ctx.emit("gemm", [a], out, {}, params)
            return
        mid = ctx.fresh_tensor(out, "/gemm")
        ctx.emit("gemm", [a], mid, {}, params)
        ctx.emit("add", [mid], out, {"constant_first": False}, {"constant": beta * c}, "/bias")
        return
    b = ctx.activation(ins[1])
    if attrs.get("transB", 0):
        b = _transpose(ctx, b, "/transpose_b")
    steps = [("matmul", {}, {})]
    if alpha != 1.0:
        steps.append(("mul", {"constant_first": False}, {"constant": np.array(alpha)}))
    if c is not None:
        steps.append(("add", {"constant_first": False}, {"constant": beta * c}))
    current = [a, b]
    for k, (op, op_attrs, params) in enumerate(steps):
        target = out if k == len(steps) - 1 else ctx.fresh_tensor(out, f"/{op}")
        ctx.emit(op, current, target, op_attrs, params, "" if k == 0 else f"/{op}")
        current = [target]


@converts("MatMul")
def _matmul(ctx, node, ins, attrs):
    a, b = ins[:2]
    if ctx.is_activation(a) and not ctx.is_activation(b) and ctx.shape(b) and \
            len(ctx.shape(b)) == 2:
        ctx.emit("gemm", [a], node.output[0], {}, {"weight": ctx.const(b, "the MatMul B")})
    elif ctx.is_activation(a) and ctx.is_activation(b):
        ctx.emit("matmul", [a, b], node.output[0])
    else:
        const_first = not ctx.is_activation(a)
        x, c = (b, a) if const_first else (a, b)
        ctx.emit("matmul", [x], node.output[0], {"constant_first": const_first},
                 {"constant": ctx.const(c, "the MatMul constant operand")})
