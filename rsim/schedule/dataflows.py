"""The dataflows in one table: which GEMM dimension each places along the array's rows, along its
columns and in time, and how many array-row times its fill takes. Everything the scheduler and
the reduction plan need to know about a dataflow follows from its row here:

- folds = ceil(extent on rows / R) x ceil(extent on columns / C), column folds outer;
- an operand is read once per fold along the one GEMM dimension it lacks (the ifmap M x K lacks
  N, the filter K x N lacks M, the outputs M x N lack K), once in all when that dimension
  streams in time;
- K along the rows means each PE column sums a chunk of R products and the chunk results meet in
  a partial-sum register (WS, IS); K in time means each PE accumulates the whole K (OS).

A new dataflow is one row of `DATAFLOWS` (its name also goes in the accelerator schema's
`Dataflow`), checked by SCALE-Sim agreement tests where SCALE-Sim has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from formats.errors import RsimError
from hwconfigs.schema import Dataflow

GEMM_DIMS = ("m", "k", "n")
OS_FILLS: tuple[str, ...] = ("scalesim", "paper")


@dataclass(frozen=True)
class DataflowRule:
    """One dataflow: the GEMM dimension on the rows, on the columns and in time, what stays in
    each PE, and its fill in array-row times (SCALE-Sim 3.0.0's count)."""

    name: str
    rows: str
    cols: str
    time: str
    stationary: str
    fill_rows: int

    def extents(self, m: int, k: int, n: int) -> tuple[int, int, int]:
        """(extent on rows, extent on columns, extent in time) of an (M x K) @ (K x N) GEMM."""
        dims = {"m": m, "k": k, "n": n}
        return dims[self.rows], dims[self.cols], dims[self.time]

    @property
    def chunks_k(self) -> bool:
        """K lies along the rows: R-product chunks summed per column, then in a partial sum."""
        return self.rows == "k"

    @property
    def preloads(self) -> bool:
        """Whether the stationary operand is loaded into the PEs before each fold (weights or
        inputs); outputs need no preload."""
        return self.stationary != "output"

    def fill(self, rows: int, os_fill: str = "scalesim") -> int:
        """Fill cycles of one fold: the stationary operand's load plus the skew. SCALE-Sim
        3.0.0 counts R for OS, whose papers count 2R as for the others (`os_fill="paper"`;
        scale-sim-v3 issue #4)."""
        if os_fill not in OS_FILLS:
            raise RsimError(f"os_fill: must be one of {', '.join(OS_FILLS)}, got {os_fill!r}")
        return (2 if os_fill == "paper" else self.fill_rows) * rows

    def folds_along(self, dim: str, row_folds: int, col_folds: int) -> int:
        """How many folds cover GEMM dimension `dim` (1 when it streams in time)."""
        return row_folds if dim == self.rows else col_folds if dim == self.cols else 1


DATAFLOWS: dict[str, DataflowRule] = {
    "os": DataflowRule("os", rows="m", cols="n", time="k", stationary="output", fill_rows=1),
    "ws": DataflowRule("ws", rows="k", cols="n", time="m", stationary="weight", fill_rows=2),
    "is": DataflowRule("is", rows="k", cols="m", time="n", stationary="input", fill_rows=2),
}
assert tuple(DATAFLOWS) == get_args(Dataflow), "the schema's dataflows and the table disagree"


def dataflow_rule(name: str) -> DataflowRule:
    """The table row of dataflow `name`, or one error naming the valid ones."""
    if name not in DATAFLOWS:
        raise RsimError(f"dataflow: must be one of {', '.join(DATAFLOWS)}, got {name!r}")
    return DATAFLOWS[name]
