"""Matrix products: `gemm` (activation times a constant weight, the FC layer) and `matmul`
(numpy/ONNX MatMul of two operands, one of which may be a constant): float forward, GEMM lowering
and the bit-accurate models.

gemm params: `weight` (K, N), so y = x @ weight + bias over the last axis of x (leading axes are
rows); optional `bias` (N,). matmul params: optional `constant` with attrs `constant_first`
(bool: the constant is the left operand).

Lowering: gemm is M = all leading rows, K x N the weight. matmul: the leading dimensions of the
left operand fold into M when the right operand is a plain matrix, otherwise each broadcast batch
matrix is its own GEMM. A matmul of two activations on a minifloat datapath is float-emulated.

einsum (attrs `equation`, numpy/ONNX Einstein notation; params `constant`/`constant_first` as
for matmul when one of two operands is constant): the forms the frontend cannot map onto
transposes, reshapes and a matmul (diagonals, sums over one operand's axes, three operands);
float-emulated, no MACs counted.
"""

from __future__ import annotations

import math

import numpy as np

import kernels
from kernels.threads import blas_threads_for
from rsim.ops.registry import OpSpec, operands, register
from rsim.schedule.geometry import GemmWork, gemm_work


def _gemm_shape(shapes, attrs, params):
    (x,) = shapes
    k, n = params["weight"].shape
    if not x or x[-1] != k:
        raise ValueError(f"gemm input of shape {x} does not end in the weight's K = {k}")
    return tuple(x[:-1]) + (n,)


def _gemm_lowering(name, shapes, out, attrs, params) -> GemmWork:
    k, n = params["weight"].shape
    return gemm_work(name, math.prod(shapes[0][:-1]), k, n)


def _gemm_integer(quant, inputs, rng):
    x = inputs[0].data
    acc, stats = kernels.gemm(x.reshape(-1, x.shape[-1]), quant.weights, quant.plan,
                              bias=quant.bias)
    return quant.output_stage(acc.reshape(*x.shape[:-1], acc.shape[-1]), stats, rng)


def _gemm_minifloat(quant, inputs, rng):
    x = inputs[0]
    values = x.values()
    acc = kernels.minifloat_gemm(values.reshape(-1, values.shape[-1]), quant.weights, quant.plan,
                                 a_format=x.fmt, b_format=quant.weight_fmt, bias=quant.bias)
    acc = acc.reshape(*values.shape[:-1], acc.shape[-1])
    return quant.rounded_output(acc, rng, acc)


def _gemm_forward(arrays, attrs, params):
    x, w = arrays[0], params["weight"]
    # one 2-D BLAS call: numpy's stacked matmul is far slower than a single large GEMM
    rows = x.reshape(-1, w.shape[0])
    with blas_threads_for(rows.shape[0] * w.size):
        y = np.matmul(rows, w).reshape(x.shape[:-1] + (w.shape[1],))
    if "bias" in params:
        y += params["bias"]
    return y


def _matmul_shape(shapes, attrs, params):
    a, b = (
        tuple(s.shape) if isinstance(s, np.ndarray) else tuple(s)
        for s in operands(shapes, attrs, params)
    )
    a2, b2 = (a if len(a) > 1 else (1,) + a), (b if len(b) > 1 else b + (1,))
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul operands {a} and {b} do not share the inner dimension")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul_lowering(name, shapes, out, attrs, params) -> GemmWork:
    left, right = (tuple(s.shape) if isinstance(s, np.ndarray) else tuple(s)
                   for s in operands(shapes, attrs, params))
    left = left if len(left) > 1 else (1,) + left
    right = right if len(right) > 1 else right + (1,)
    k, n = right[-2], right[-1]
    if len(right) == 2:
        return gemm_work(name, math.prod(left[:-1]), k, n, op="matmul")
    count = math.prod(out) // (left[-2] * n)
    return gemm_work(name, left[-2], k, n, count=count, op="matmul")


def _matmul_integer(quant, inputs, rng):
    """One integer GEMM per broadcast batch matrix, each following the layer's plan."""
    left, right = operands([t.data for t in inputs], quant.layer.attrs,
                           {} if quant.weights is None else {"constant": quant.weights})
    shape = np.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    left = np.broadcast_to(left, shape + left.shape[-2:]).reshape(-1, *left.shape[-2:])
    right = np.broadcast_to(right, shape + right.shape[-2:]).reshape(-1, *right.shape[-2:])
    parts = [kernels.gemm(np.ascontiguousarray(a), np.ascontiguousarray(b), quant.plan)
             for a, b in zip(left, right, strict=True)]
    acc = np.stack([acc for acc, _ in parts]).reshape(shape + parts[0][0].shape)
    stats = kernels.AccumulatorStats(
        np.stack([s.acc_events for _, s in parts]).reshape(acc.shape),
        np.stack([s.partial_sum_events for _, s in parts]).reshape(acc.shape),
        channel_axis=acc.ndim - 1, outputs_at_risk=sum(s.outputs_at_risk for _, s in parts))
    return quant.output_stage(acc, stats, rng)


def _matmul_forward(arrays, attrs, params):
    left, right = operands(arrays, attrs, params)
    # a stacked matmul is one BLAS call per matrix pair: its threads pay off per pair
    pair_macs = left.shape[-1] * (left.shape[-2] if left.ndim > 1 else 1) * (
        right.shape[-1] if right.ndim > 1 else 1
    )
    with blas_threads_for(pair_macs):
        return np.matmul(left, right)


register(OpSpec("gemm", _gemm_forward, _gemm_shape, lowering=_gemm_lowering,
                integer=_gemm_integer, minifloat=_gemm_minifloat))
register(OpSpec("matmul", _matmul_forward, _matmul_shape, lowering=_matmul_lowering,
                integer=_matmul_integer))


def einsum_spec(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str, dict]:
    """The operands' subscripts (an ellipsis as "."), the output's, and every letter's size
    (the ellipsis dims under the key "...")."""
    text = equation.replace(" ", "")
    inputs, _, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r} names {len(terms)} operands, got {len(shapes)}")
    sizes: dict = {}
    ellipsis: list[tuple[int, ...]] = []
    subscripts = []
    for term, shape in zip(terms, shapes, strict=True):
        letters = term.replace("...", ".")
        extra = len(shape) - (len(letters) - ("." in letters))
        if extra < 0 or (extra and "." not in letters):
            raise ValueError(f"einsum term {term!r} does not fit an operand of shape {shape}")
        at = 0
        for letter in letters:
            if letter == ".":
                ellipsis.append(tuple(shape[at:at + extra]))
                at += extra
                continue
            size = shape[at]
            if sizes.get(letter, size) != size and 1 not in (size, sizes[letter]):
                raise ValueError(f"einsum letter {letter!r} has sizes {sizes[letter]} and {size}")
            sizes[letter] = max(size, sizes.get(letter, size))
            at += 1
        subscripts.append(letters)
    sizes["..."] = tuple(np.broadcast_shapes(*ellipsis)) if ellipsis else ()
    if "->" not in text:
        counts = "".join(subscripts)
        output = ("." if "." in counts else "") + "".join(
            sorted(c for c in set(counts) if c != "." and counts.count(c) == 1))
    return subscripts, output.replace("...", "."), sizes


def _einsum_shape(shapes, attrs, params):
    items = [tuple(s.shape) if isinstance(s, np.ndarray) else tuple(s)
             for s in operands(shapes, attrs, params)]
    _, output, sizes = einsum_spec(attrs["equation"], items)
    out: tuple[int, ...] = ()
    for letter in output:
        out += sizes["..."] if letter == "." else (sizes[letter],)
    return out


def _einsum(arrays, attrs, params):
    return np.einsum(attrs["equation"], *operands(arrays, attrs, params))


register(OpSpec("einsum", _einsum, _einsum_shape))
