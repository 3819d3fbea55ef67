"""Matrix products in float: `gemm` (activation times a constant weight, the FC layer) and
`matmul` (numpy/ONNX MatMul of two operands, one of which may be a constant).

gemm params: `weight` (K, N), so y = x @ weight + bias over the last axis of x (leading axes are
rows); optional `bias` (N,). matmul params: optional `constant` with attrs `constant_first`
(bool: the constant is the left operand).
"""

from __future__ import annotations

import numpy as np

from kernels.threads import blas_threads_for
from rsim.ops.registry import OpSpec, operands, register


def _gemm_shape(shapes, attrs, params):
    (x,) = shapes
    k, n = params["weight"].shape
    if not x or x[-1] != k:
        raise ValueError(f"gemm input of shape {x} does not end in the weight's K = {k}")
    return tuple(x[:-1]) + (n,)


def _gemm_macs(shapes, out, attrs, params):
    return int(np.prod(out)) * params["weight"].shape[0]


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


def _matmul_macs(shapes, out, attrs, params):
    a = [
        tuple(s.shape) if isinstance(s, np.ndarray) else tuple(s)
        for s in operands(shapes, attrs, params)
    ][0]
    return int(np.prod(out)) * a[-1]


def _matmul_forward(arrays, attrs, params):
    left, right = operands(arrays, attrs, params)
    # a stacked matmul is one BLAS call per matrix pair: its threads pay off per pair
    pair_macs = left.shape[-1] * (left.shape[-2] if left.ndim > 1 else 1) * (
        right.shape[-1] if right.ndim > 1 else 1
    )
    with blas_threads_for(pair_macs):
        return np.matmul(left, right)


register(OpSpec("gemm", _gemm_forward, _gemm_shape, _gemm_macs))
register(OpSpec("matmul", _matmul_forward, _matmul_shape, _matmul_macs))
