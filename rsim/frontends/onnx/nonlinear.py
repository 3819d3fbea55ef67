"""ONNX element-wise functions: Erf, Gelu, Exp, Log, Sqrt, Reciprocal, Neg, Abs, Sign, Floor,
Ceil, Round, Softplus, Softsign, Mish, Elu, Selu, Celu, ThresholdedRelu, PRelu."""

from __future__ import annotations

from rsim.frontends.onnx.registry import converts, unary

for _op_type, _op in [("Erf", "erf"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"),
                      ("Reciprocal", "reciprocal"), ("Neg", "neg"), ("Abs", "abs"),
                      ("Sign", "sign"), ("Floor", "floor"), ("Ceil", "ceil"), ("Round", "round"),
                      ("Softplus", "softplus"), ("Softsign", "softsign"), ("Mish", "mish")]:
    unary(_op_type, _op)
unary("Gelu", "gelu", approximate="none")
unary("Elu", "elu", alpha=1.0)
unary("Celu", "celu", alpha=1.0)
unary("Selu", "selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875)
unary("ThresholdedRelu", "thresholded_relu", alpha=1.0)


@converts("PRelu")
def _prelu(ctx, node, ins, attrs):
    x = ctx.activation(ins[0])
    if ctx.is_activation(ins[1]):
        ctx.emit("prelu", [x, ins[1]], node.output[0])
    else:
        ctx.emit("prelu", [x], node.output[0], {}, {"slope": ctx.const(ins[1], "the PRelu slope")})
