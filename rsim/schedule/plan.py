"""The reduction plan a layer's schedule carries to the bit-accurate kernels.

With K along the array rows (WS, IS) K is cut into chunks of R rows: each chunk is summed in its
column's accumulator, and the chunk results are added into the partial-sum register in fold
(ascending k) order. With K in time (OS) each PE accumulates the whole K in order, so there is one
chunk and no partial-sum step. With a saturating accumulator the two orders can give different
results; that is what the plan makes explicit.
"""

from __future__ import annotations

from hwconfigs.schema import Array, Datapath
from kernels.plan import ReductionPlan
from rsim.schedule.dataflows import dataflow_rule


def reduction_plan(array: Array, datapath: Datapath) -> ReductionPlan:
    """The plan of a layer with `datapath` on `array` (its dataflow and rows)."""
    chunk = array.rows if dataflow_rule(array.dataflow).chunks_k else None
    return ReductionPlan(datapath.accumulator, chunk, datapath.partial_sum, datapath.bias_mode,
                         datapath.product, datapath.accumulator.float_rounding)
