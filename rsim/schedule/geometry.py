"""Layer geometry lowered to GEMMs: the only thing the array mapping needs to know about a layer.

A layer becomes `count` independent GEMMs of one shape (M x K) @ (K x N): M = output pixels x
batch, K = kernel window x input channels per group, N = output channels per group. Grouped and
depthwise convolutions give one GEMM per group; a batched MatMul gives one per batch matrix.
The unique operand footprints (elements, per GEMM) feed the DRAM traffic model.
"""

from __future__ import annotations

from dataclasses import dataclass

from formats.errors import RsimError


def _positive(layer: str, **values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RsimError(f"layer {layer!r}: {key} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class GemmWork:
    """One layer as `count` equal GEMMs (M x K) @ (K x N), with per-GEMM unique footprints.

    `ifmap_elements` is the number of distinct input values one GEMM reads (for a convolution the
    ifmap, not its im2col expansion); `filter_elements` = K*N and `ofmap_elements` = M*N unless
    the caller knows better.
    """

    name: str
    op: str
    m: int
    k: int
    n: int
    count: int
    ifmap_elements: int
    filter_elements: int
    ofmap_elements: int

    def __post_init__(self) -> None:
        _positive(self.name, M=self.m, K=self.k, N=self.n, count=self.count,
                  ifmap_elements=self.ifmap_elements, filter_elements=self.filter_elements,
                  ofmap_elements=self.ofmap_elements)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole layer."""
        return self.count * self.m * self.k * self.n


def gemm_work(name: str, m: int, k: int, n: int, *, count: int = 1, batch: int = 1,
              op: str = "gemm") -> GemmWork:
    """A fully connected / MatMul layer: `batch` x `m` rows of length `k` times a (k x n) matrix."""
    _positive(name, M=m, K=k, N=n, count=count, batch=batch)
    rows = m * batch
    return GemmWork(name, op, rows, k, n, count, rows * k, k * n, rows * n)


def conv_work(name: str, *, in_h: int, in_w: int, in_channels: int, out_h: int, out_w: int,
              out_channels: int, kernel_h: int, kernel_w: int, groups: int = 1, batch: int = 1,
              op: str = "conv") -> GemmWork:
    """A 2-D convolution (any stride, padding, dilation: they only shape `out_h`, `out_w`).

    `in_h` x `in_w` is the ifmap as stored (unpadded for rsim's own layers, pre-padded in
    SCALE-Sim topologies); each of the `groups` GEMMs reads its own in_channels/groups slice.
    """
    _positive(name, in_h=in_h, in_w=in_w, in_channels=in_channels, out_h=out_h, out_w=out_w,
              out_channels=out_channels, kernel_h=kernel_h, kernel_w=kernel_w, groups=groups,
              batch=batch)
    if in_channels % groups or out_channels % groups:
        raise RsimError(f"layer {name!r}: groups={groups} must divide in_channels={in_channels} "
                        f"and out_channels={out_channels}")
    group_in, group_out = in_channels // groups, out_channels // groups
    m = out_h * out_w * batch
    k = kernel_h * kernel_w * group_in
    return GemmWork(name, op, m, k, group_out, groups, in_h * in_w * group_in * batch,
                    k * group_out, m * group_out)
