"""ONNX element-wise operators: Add/Sub/Mul/Div, the activations, Clip, Cast, and Dropout/Identity
(an identity layer, which the IR passes remove)."""

from __future__ import annotations

import numpy as np
import onnx

from rsim.frontends.onnx.loading import FLOAT_TENSOR_TYPES
from rsim.frontends.onnx.registry import CONVERTERS, converts, unary

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
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

unary("Relu", "relu")
unary("Sigmoid", "sigmoid")
unary("Tanh", "tanh")
unary("HardSwish", "hard_swish")
unary("LeakyRelu", "leaky_relu", alpha=0.01)
unary("HardSigmoid", "hard_sigmoid", alpha=0.2, beta=0.5)


@converts("Clip")
def _clip(ctx, node, ins, attrs):
    if ctx.opset < 11:
        low, high = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo = ctx.optional_const(ins, 1, "the Clip minimum")
        hi = ctx.optional_const(ins, 2, "the Clip maximum")
        low = -np.inf if lo is None else lo
        high = np.inf if hi is None else hi
    ctx.emit("clip", [ctx.activation(ins[0])], node.output[0],
             {"min": float(low), "max": float(high)})


@converts("Cast")
def _cast(ctx, node, ins, attrs):
    if not ctx.is_activation(ins[0]):  # a constant: ONNX's own cast rules, any element type
        return ctx.evaluate(node, ins)
    to = attrs["to"]
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
