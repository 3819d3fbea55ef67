"""Lower the layers of a `rsim.network.Network` that do multiply-accumulates to GEMM work.

conv: one GEMM per group, M = batch x output pixels, K = kh x kw x in_channels/groups,
N = out_channels/groups. conv_transpose, in the scatter form the float path uses: per group,
M = batch x input pixels, K = in_channels/groups, N = out_channels/groups x kh x kw (the col2im
additions after it are not MACs). gemm: M = all leading rows, K x N the weight. matmul: leading
dimensions of the left operand fold into M when the right operand is a plain matrix, otherwise
each broadcast batch matrix is its own GEMM. Other ops do no MACs and are not scheduled.
"""

from __future__ import annotations

import math

from rsim.network import Network
from rsim.schedule.geometry import GemmWork, conv_work, gemm_work


def network_work(network: Network, batch: int | None = None) -> list[GemmWork]:
    """GEMM work of every MAC layer of `network` at `batch` (default: its import batch)."""
    work = []
    for layer in network.layers:
        if layer.op not in _LOWERINGS:
            continue
        in_shapes = [network.shape(tensor, batch) for tensor in layer.inputs]
        out_shape = network.shape(layer.outputs[0], batch)
        work.append(_LOWERINGS[layer.op](layer, in_shapes, out_shape))
    return work


def _conv(layer, in_shapes, out_shape) -> GemmWork:
    (n, c, h, w), (_, o, ho, wo) = in_shapes[0], out_shape
    kh, kw = layer.params["weight"].shape[2:]
    return conv_work(layer.name, in_h=h, in_w=w, in_channels=c, out_h=ho, out_w=wo,
                     out_channels=o, kernel_h=kh, kernel_w=kw, groups=layer.attrs["groups"],
                     batch=n)


def _conv_transpose(layer, in_shapes, out_shape) -> GemmWork:
    (n, c, h, w), (_, _, ho, wo) = in_shapes[0], out_shape
    groups = layer.attrs["groups"]
    _, out_per_group, kh, kw = layer.params["weight"].shape
    m, k, cols = n * h * w, c // groups, out_per_group * kh * kw
    return GemmWork(layer.name, layer.op, m, k, cols, groups, m * k, k * cols,
                    n * ho * wo * out_per_group)


def _gemm(layer, in_shapes, out_shape) -> GemmWork:
    k, n = layer.params["weight"].shape
    return gemm_work(layer.name, math.prod(in_shapes[0][:-1]), k, n)


def _matmul(layer, in_shapes, out_shape) -> GemmWork:
    if "constant" in layer.params:
        const = tuple(layer.params["constant"].shape)
        left, right = ((const, in_shapes[0]) if layer.attrs["constant_first"]
                       else (in_shapes[0], const))
    else:
        left, right = in_shapes
    left = tuple(left) if len(left) > 1 else (1,) + tuple(left)
    right = tuple(right) if len(right) > 1 else tuple(right) + (1,)
    k, n = right[-2], right[-1]
    if len(right) == 2:
        return gemm_work(layer.name, math.prod(left[:-1]), k, n, op="matmul")
    count = math.prod(out_shape) // (left[-2] * n)
    return gemm_work(layer.name, left[-2], k, n, count=count, op="matmul")


_LOWERINGS = {"conv": _conv, "conv_transpose": _conv_transpose, "gemm": _gemm,
              "matmul": _matmul}
