"""The GEMM work of a `rsim.network.Network`: each layer whose op declares a GEMM lowering
(`OpSpec.lowering`, see the op modules for how each op lowers); other ops do no MACs and are not
scheduled."""

from __future__ import annotations

from rsim.network import Network
from rsim.ops import OPS
from rsim.schedule.geometry import GemmWork


def network_work(network: Network, batch: int | None = None) -> list[GemmWork]:
    """GEMM work of every MAC layer of `network` at `batch` (default: its import batch)."""
    work = []
    for layer in network.layers:
        lowering = OPS[layer.op].lowering
        if lowering is None:
            continue
        in_shapes = [network.shape(tensor, batch) for tensor in layer.inputs]
        out_shape = network.shape(layer.outputs[0], batch)
        work.append(lowering(layer.name, in_shapes, out_shape, layer.attrs, layer.params))
    return work
