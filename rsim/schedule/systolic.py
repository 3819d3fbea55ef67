"""Closed-form timing of one GEMM on an R x C systolic array, as SCALE-Sim 3.0.0 counts it.

The dataflow's row of `rsim.schedule.dataflows.DATAFLOWS` decides which GEMM dimension lies
along the rows (Sr), along the columns (Sc) and which streams in time (T): OS -> (M, N, K),
WS -> (K, N, M), IS -> (K, M, N). The operand is cut into folds = ceil(Sr/R) * ceil(Sc/C) tiles
that run one after another (column folds outer, row folds inner), each taking fill + C + T - 2
cycles (the fill: `DataflowRule.fill`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsim.schedule.dataflows import DataflowRule, dataflow_rule


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class FoldTiming:
    """How one GEMM folds onto the array and how long each fold takes."""

    rows: int
    cols: int
    dataflow: DataflowRule
    spatial_rows: int  # Sr: GEMM extent laid along the array rows
    spatial_cols: int  # Sc: GEMM extent laid along the array columns
    temporal: int  # T: GEMM extent streamed through the array in time
    row_folds: int
    col_folds: int
    fold_cycles: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def cycles(self) -> int:
        """Cycles of the whole GEMM: folds do not overlap, the array drains between them."""
        return self.folds * self.fold_cycles

    @property
    def mapping_efficiency(self) -> float:
        """Mean over folds of the share of PEs that hold a mapped element."""
        return self.spatial_rows * self.spatial_cols / (self.folds * self.rows * self.cols)

    @property
    def scalesim_compute_util(self) -> float:
        """SCALE-Sim's "Compute Util %" / 100: MACs over folds x R x C x its own fold length.

        For the dataflows that preload the stationary operand (WS/IS) SCALE-Sim measures the fold
        length on the unskewed operand, 2R + 2C + T - 3, not the fold_cycles it counts; this
        reproduces that quirk (OS uses fold_cycles).
        """
        length = self.fold_cycles
        if self.dataflow.preloads:
            length = 2 * self.rows + 2 * self.cols + self.temporal - 3
        macs = self.spatial_rows * self.spatial_cols * self.temporal
        return macs / (self.folds * self.rows * self.cols * length)


def fold_timing(m: int, k: int, n: int, *, rows: int, cols: int, dataflow: str,
                os_fill: str = "scalesim") -> FoldTiming:
    """Fold an (M x K) @ (K x N) GEMM onto a rows x cols array with the given dataflow."""
    rule = dataflow_rule(dataflow)
    sr, sc, t = rule.extents(m, k, n)
    return FoldTiming(rows, cols, rule, sr, sc, t, _ceil_div(sr, rows), _ceil_div(sc, cols),
                      rule.fill(rows, os_fill) + cols + t - 2)
