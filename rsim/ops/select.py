"""Selection by a condition and the comparison that makes conditions: where and equal.

Operands mix activations and constants (`rsim.ops.registry.named_operands`): attrs `roles`
names each activation input's role, params hold the constant ones. where's roles are `x`, `y`
(the values) and `condition` (nonzero selects x); the frontend puts a value operand first, so
the layer's first input is data whenever one is an activation. equal's roles are `a` and `b`;
its output holds 1.0 where they are equal, else 0.0.

On codes, where keeps the format of its first (data) input: the other value operand is
requantized onto it (one rounding, saturating), a constant one rounded onto it, and codes are
selected. equal compares exactly (activations aligned onto the finer grid; a constant c equals
a code k at fractional length f exactly when c·2^f = k) and writes 0/1 in an index format.
"""

from __future__ import annotations

import numpy as np

from kernels.requant import requantize_to_range
from rsim.ops.codes import aligned, constant_codes
from rsim.ops.registry import OpSpec, always, named_operands, register
from rsim.quant.tensor import Outcome, QTensor

WHERE_ROLES = ("condition", "x", "y")


def _where(arrays, attrs, params):
    ops = named_operands(arrays, attrs, params)
    return np.where(ops["condition"] != 0, ops["x"], ops["y"])


def _where_shape(shapes, attrs, params):
    ops = named_operands(shapes, attrs, params)
    return tuple(np.broadcast_shapes(*(tuple(np.shape(ops[r]) if isinstance(ops[r], np.ndarray)
                                             else ops[r]) for r in WHERE_ROLES)))


def _data_first(attrs, params, n_inputs) -> bool:
    return bool(attrs["roles"]) and attrs["roles"][0] in ("x", "y")


def _where_integer(quant, inputs, rng):
    attrs, params = quant.layer.attrs, quant.layer.params
    fmt = quant.out_fmt
    by_role = dict(zip(attrs["roles"], inputs, strict=True))
    clipped = []
    values = {}
    for role in ("x", "y"):
        if role in by_role:
            t = by_role[role]
            codes, mask = requantize_to_range(t.data, t.fmt.fl - fmt.fl, fmt.min_code,
                                              fmt.max_code, rounding=quant.rounding, rng=rng)
            values[role] = codes
            clipped.append(mask)
        else:
            values[role] = constant_codes(params[role], fmt, quant.rounding, rng)
    condition = (by_role["condition"].data if "condition" in by_role
                 else params["condition"]) != 0
    codes = np.where(condition, values["x"], values["y"])
    mask = np.zeros(codes.shape, bool)
    for part, role in zip(clipped, [r for r in ("x", "y") if r in by_role], strict=True):
        mask |= np.broadcast_to(part, codes.shape) & (condition == (role == "x"))
    return Outcome(QTensor(codes.astype(fmt.code_dtype), fmt), mask)


def _equal(arrays, attrs, params):
    ops = named_operands(arrays, attrs, params)
    return (ops["a"] == ops["b"]).astype(np.float32)


def _equal_shape(shapes, attrs, params):
    ops = named_operands(shapes, attrs, params)
    return tuple(np.broadcast_shapes(*(tuple(np.shape(ops[r]) if isinstance(ops[r], np.ndarray)
                                             else ops[r]) for r in ("a", "b"))))


def _equal_integer(quant, inputs, rng):
    attrs, params = quant.layer.attrs, quant.layer.params
    if len(inputs) == 2:
        (a, b), _ = aligned(inputs)
        same = a == b
    else:
        x = inputs[0]
        constant = params["b" if attrs["roles"] == ("a",) else "a"].astype(np.float64)
        same = x.data.astype(np.float64) == constant * 2.0 ** x.fmt.fl
    return Outcome(QTensor(same.astype(quant.out_fmt.code_dtype), quant.out_fmt))


register(OpSpec("where", _where, _where_shape, keeps_format=_data_first, integer=_where_integer,
                integer_applies=_data_first))
register(OpSpec("equal", _equal, _equal_shape, integer=_equal_integer, index_output=always))
