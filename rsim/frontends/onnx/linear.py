"""ONNX matrix products: Gemm, MatMul (a constant right-hand matrix makes an FC `gemm` layer,
two activations a `matmul`) and Einsum (two-operand products become transposes, reshapes and
a matmul; other forms an `einsum` layer)."""

from __future__ import annotations

import math

import numpy as np

from rsim.frontends.onnx.registry import converts
from rsim.ops.matmul import einsum_spec


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
    out = node.output[0]
    if len(ins) > 2 and ins[2] and ctx.is_activation(ins[2]):
        return _gemm_computed_c(ctx, node, ins, attrs, a, out)
    c = ctx.optional_const(ins, 2, "the Gemm bias C")
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


def _gemm_computed_c(ctx, node, ins, attrs, a: str, out: str) -> None:
    """alpha·A·B + beta·C with a computed C: the product without C, then an add of C (scaled
    by beta when beta is not 1)."""
    product = ctx.fresh_tensor(out, "/product")
    b_attrs = {k: v for k, v in attrs.items() if k in ("alpha", "transB")}
    _gemm(ctx, node.__class__(op_type="Gemm", input=[a, ins[1]], output=[product]),
          [a, ins[1]], b_attrs)
    c = ins[2]
    beta = attrs.get("beta", 1.0)
    if beta != 1.0:
        scaled = ctx.fresh_tensor(out, "/beta_c")
        ctx.emit("mul", [c], scaled, {"constant_first": False}, {"constant": np.array(beta)},
                 "/beta")
        c = scaled
    ctx.emit("add", [product, c], out, suffix="/c")


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


@converts("Einsum")
def _einsum(ctx, node, ins, attrs):
    names = [n for n in ins if n]
    equation = attrs["equation"]
    try:
        terms, output, sizes = einsum_spec(equation, [ctx.shape(n) for n in names])
    except ValueError as error:
        raise ctx.error(str(error)) from error
    if len(names) == 2 and _as_matmul(ctx, node, names, terms, output, sizes):
        return
    xs = [n for n in names if ctx.is_activation(n)]
    if len(names) == 2 and len(xs) == 1:
        const_first = not ctx.is_activation(names[0])
        ctx.emit("einsum", xs, node.output[0],
                 {"equation": equation, "constant_first": const_first}, {"constant": ctx.const(names[0 if const_first else 1], "an Einsum operand")})
    elif len(xs) == len(names):
        ctx.emit("einsum", xs, node.output[0], {"equation": equation})
    else:
        raise ctx.error("an Einsum of more than two operands takes activations only")


def _as_matmul(ctx, node, names, terms, output, sizes) -> bool:
    """A two-operand product whose every letter is a batch axis (both operands and the output),
    a contracted one (both operands only) or a free one (one operand and the output), as
    transposes, reshapes and one matmul; False (nothing emitted) for any other form."""
    a, b = terms
    if "." in a + b or len(set(a)) < len(a) or len(set(b)) < len(b):
        return False
    batch = [c for c in output if c in a and c in b]
    contracted = [c for c in a if c in b and c not in output]
    left = [c for c in a if c not in b]
    right = [c for c in b if c not in a]
    if any(c not in output for c in left + right) or \
            sorted(output) != sorted(batch + left + right):
        return False
    if any(ctx.shape(names[0])[a.index(c)] != ctx.shape(names[1])[b.index(c)] for c in batch):
        return False
    size = {c: sizes[c] for c in a + b}
    out = node.output[0]
    lhs = _arranged(ctx, names[0], a, batch + left + contracted,
                    [size[c] for c in batch] + [math.prod(size[c] for c in left),
                                                math.prod(size[c] for c in contracted)],
                    out, "/lhs")
    rhs = _arranged(ctx, names[1], b, batch + contracted + right,
                    [size[c] for c in batch] + [math.prod(size[c] for c in contracted),
                                                math.prod(size[c] for c in right)],
                    out, "/rhs")
    product = ctx.fresh_tensor(out, "/matmul")
    _matmul(ctx, node.__class__(op_type="MatMul", input=[lhs, rhs], output=[product]),
            [lhs, rhs], {})
    order = batch + left + right
    _arranged(ctx, product, "".join(order), order, [size[c] for c in order], out, "/out",
              reshape_first=True, final=out, target_order=list(output))
    return True


def _arranged(ctx, name, letters, order, shape, base, suffix, *, reshape_first=False,
              final=None, target_order=None):
    """`name` (axes labelled by `letters`) transposed to `order` and reshaped to `shape`, or
    (reshape_first) reshaped to `shape` and transposed to `target_order`; the first reshaped
    dimension is inferred (-1), so a batch folded into it follows the run. Writes `final` when
    given, else a fresh tensor; steps that change nothing are skipped."""
    steps = []
    perm = tuple(letters.index(c) for c in order)
    reshape = ("reshape", {"shape": tuple([-1] + list(shape[1:])) if shape else ()})
    if reshape_first:
        if tuple(ctx.shape(name)) != tuple(shape):
            steps.append(reshape)
        perm = tuple(order.index(c) for c in target_order)
        if perm != tuple(range(len(perm))):
            steps.append(("transpose", {"perm": perm}))
    else:
        if perm != tuple(range(len(perm))):
            steps.append(("transpose", {"perm": perm}))
        current = [ctx.shape(name)[letters.index(c)] for c in order]
        if current != list(shape):
            steps.append(reshape)
    if not steps:
        if final is not None:
            ctx.emit("identity", [name], final, suffix=suffix)
            return final
        return name
    current = name
    for k, (op, op_attrs) in enumerate(steps):
        last = k == len(steps) - 1
        target = final if last and final is not None else ctx.fresh_tensor(base, f"{suffix}{k}")
        ctx.emit(op, [current], target, op_attrs, suffix=f"{suffix}/{op}")
        current = target
    return current
