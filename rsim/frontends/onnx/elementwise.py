"""ONNX element-wise operators: Add/Sub/Mul/Div/Pow, Max/Min/Sum/Mean, the activations, Clip,
Cast/CastLike, and Dropout/Identity (an identity layer, which the IR passes remove)."""

from __future__ import annotations

import numpy as np
import onnx

from rsim.frontends.onnx.loading import FLOAT_TENSOR_TYPES
from rsim.frontends.onnx.registry import CONVERTERS, converts, unary

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}
_VARIADIC = {"Max": ("max", np.maximum), "Min": ("min", np.minimum), "Sum": ("sum", np.add),
             "Mean": ("mean", np.add)}
# float types narrower than the float path's float32, by the format spec they round to
NARROW_FLOATS = {onnx.TensorProto.FLOAT16: "fp16", onnx.TensorProto.BFLOAT16: "bf16"}


def _binary(ctx, node, ins, attrs):
    op = _BINARY[node.op_type]
    a, b = ins[:2]
    if ctx.is_activation(a) and ctx.is_activation(b):
        ctx.emit(op, [a, b], node.output[0])
        return
    const_first = not ctx.is_activation(a)
    x, c = (b, a) if const_first else (a, b)
    ctx.emit(op, [x], node.output[0], {"constant_first": const_first},
             {"constant": ctx.const(c, f"an operand of {node.op_type}")})


for _op_type in _BINARY:
    CONVERTERS[_op_type] = _binary



@converts(*_VARIADIC)
def _variadic(ctx, node, ins, attrs):
    """The activation operands are the layer's inputs; the constant ones are combined into one
    (their max, min or sum; Mean divides by the count of all operands)."""
    names = [n for n in ins if n]
    xs = [n for n in names if ctx.is_activation(n)]
    if not xs:
        return ctx.evaluate(node, ins)
    op, combine = _VARIADIC[node.op_type]
    constants = [ctx.const(n, f"an operand of {node.op_type}").astype(np.float64)
                 for n in names if not ctx.is_activation(n)]
    params = {}
    if constants:
        value = constants[0]
        for c in constants[1:]:
            value = combine(value, c)
        params["constant"] = value
    ctx.emit(op, xs, node.output[0], {"count": len(names)}, params)


unary("Relu", "relu")
unary("Sigmoid", "sigmoid")
unary("Tanh", "tanh")
unary("HardSwish", "hard_swish")
unary("LeakyRelu", "leaky_relu", alpha=0.01)
unary("HardSigmoid", "hard_sigmoid", alpha=0.2, beta=0.5)


@converts("Clip")
def _clip(ctx, node, ins, attrs):
    """Constant bounds make a clip layer; a computed bound makes the clip a max and a min layer
    (ONNX Clip is min(max(x, min), max))."""
    x = ctx.activation(ins[0])
    bounds = [] if ctx.opset < 11 else [(n, op) for n, op in zip(ins[1:3], ("max", "min"),
                                                                strict=False) if n]
    if any(ctx.is_activation(n) for n, _ in bounds):
        current = x
        for k, (name, op) in enumerate(bounds):
            target = (node.output[0] if k == len(bounds) - 1
                      else ctx.fresh_tensor(node.output[0], f"/{op}"))
            inputs, params = ([current, name], {}) if ctx.is_activation(name) else (
                [current], {"constant": ctx.const(name, "a Clip bound")})
            ctx.emit(op, inputs, target, {"count": 2}, params, suffix=f"/{op}" if k else "")
            current = target
        return
    if ctx.opset < 11:
        low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo = ctx.optional_const(ins, 1, "the Clip minimum")
        hi = ctx.optional_const(ins, 2, "the Clip maximum")
        low = -np.inf if lo is None else lo
        high = np.inf if hi is None else hi
    ctx.emit("clip", [x], node.output[0], {"min": float(low), "max": float(high)})


@converts("CastLike")
def _cast_like(ctx, node, ins, attrs):
    """Cast to the element type of the second input (an activation is floating point, or
    integer when it holds indices)."""
    like = ins[1]
    if ctx.builder.is_constant(like):
        to = onnx.helper.np_dtype_to_tensor_dtype(ctx.builder.constants[like].dtype)
    else:
        to = onnx.TensorProto.INT64 if ctx.is_index(like) else onnx.TensorProto.FLOAT
    if not ctx.is_activation(ins[0]):
        if ctx.builder.is_constant(like):
            return ctx.evaluate(node, ins)
        # a constant cast like a float activation: the float path's float32 (indices: int64)
        value = ctx.const(ins[0], "the CastLike input")
        ctx.builder.constants[node.output[0]] = value.astype(
            onnx.helper.tensor_dtype_to_np_dtype(to))
        return
    _cast_activation(ctx, node, ins, to)


@converts("Cast")
def _cast(ctx, node, ins, attrs):
    if not ctx.is_activation(ins[0]):  # a constant: ONNX's own cast rules, any element type
        return ctx.evaluate(node, ins)
    _cast_activation(ctx, node, ins, attrs["to"])


def _cast_activation(ctx, node, ins, to: int) -> None:
    """Indices stay indices when cast to an integer type and become plain values when cast to
    a float type; a float activation keeps its values or is rounded to a narrower float."""
    if ctx.is_index(ins[0]):
        if to in FLOAT_TENSOR_TYPES:
            return ctx.emit("identity", [ins[0]], node.output[0])
        ctx.builder.alias(node.output[0], ins[0])
        return
    if to not in FLOAT_TENSOR_TYPES:
        raise ctx.error(f"casts an activation to {onnx.TensorProto.DataType.Name(to)}; the "
                        "float path only keeps floating-point activations")
    if to in NARROW_FLOATS:  # the values are rounded to the narrower type
        ctx.emit("cast", [ctx.activation(ins[0])], node.output[0], {"format": NARROW_FLOATS[to]})
    else:
        ctx.builder.alias(node.output[0], ins[0])


@converts("Dropout", "Identity")
def _identity(ctx, node, ins, attrs):
    extra = ctx.used_extra_output(node)
    if extra is not None:
        raise ctx.error(f"its output {extra!r} (the dropout mask) is used; rsim removes Dropout")
    ctx.emit("identity", [ctx.activation(ins[0])], node.output[0])
