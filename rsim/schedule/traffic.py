"""SRAM and DRAM traffic of one GEMM on the array, from its folds and the buffer sizes.

SRAM counts follow SCALE-Sim's convention for what the array reads: the im2col-expanded operand,
re-read once per fold along the GEMM dimension it lacks (`DataflowRule.folds_along`: OS reads the
ifmap x column folds and the filter x row folds, WS the ifmap x column folds and the filter once,
IS the ifmap once and the filter x column folds). Outputs: with K in time (OS) each output is
written once at the activation width; with K along the rows (WS/IS) a partial sum is written per
row fold at the partial-sum width and all but the first are read back. (SCALE-Sim 3.0.0 also adds
an OS counting artefact, folds x (R + C) writes, that is not real traffic and is left out here;
`scalesim_sram_counts` has it.)

DRAM model (documented simplification, not SCALE-Sim's prefetch simulation): every operand is
fetched once (its unique footprint) and every output written once, plus the refetches forced by
a buffer too small for an operand reused across folds. Folds run column-fold outer, row-fold
inner, so an operand re-read along the columns (the outer loop) is fetched col_folds times when
the whole operand does not fit its buffer (OS/WS ifmap, IS filter), and one re-read along the
rows (the inner loop) is fetched row_folds times when the slice one column fold uses does not fit
(OS filter: K x C). With K along the rows, a column fold's partial sums (its output tile: the
outputs with the column dimension cut to C) stay in the ofmap SRAM across the row folds; if they do
not fit they spill: (row_folds - 1) writes and reads of every output.
Each SRAM is double buffered as in SCALE-Sim: one half feeds the array while the other is
filled (or drained), so an operand "fits" when its bytes are fewer than half the SRAM. With this
rule the ifmap DRAM reads equal SCALE-Sim 3.0.0's CALC-mode counts on every golden layer, and the
filter reads on every WS/IS layer (OS filter reads there exceed the footprint by a few percent
through its prefetch window, which this model does not reproduce).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from rsim.schedule.dataflows import DataflowRule
from rsim.schedule.geometry import GemmWork
from rsim.schedule.systolic import FoldTiming


def _bytes(elements: int, bits: int) -> int:
    return -(-elements * bits // 8)


@dataclass(frozen=True)
class Widths:
    """Bits per stored element of each operand stream."""

    weight: int
    activation: int
    partial_sum: int


@dataclass(frozen=True)
class Capacities:
    """Bytes of the active half of each double-buffered SRAM."""

    ifmap: float
    filter: float
    ofmap: float


@dataclass(frozen=True)
class Traffic:
    """Bytes moved by one layer (all its GEMMs), by buffer and direction."""

    ifmap_sram_read: int
    filter_sram_read: int
    ofmap_sram_write: int
    ofmap_sram_read: int
    ifmap_dram_read: int
    filter_dram_read: int
    ofmap_dram_write: int
    ofmap_dram_read: int

    @property
    def sram_bytes(self) -> int:
        return (self.ifmap_sram_read + self.filter_sram_read + self.ofmap_sram_write
                + self.ofmap_sram_read)

    @property
    def dram_bytes(self) -> int:
        return (self.ifmap_dram_read + self.filter_dram_read + self.ofmap_dram_write
                + self.ofmap_dram_read)

    def scaled(self, count: int) -> Traffic:
        return Traffic(*(count * value for value in self.__dict__.values()))


def scalesim_sram_counts(work: GemmWork, timing: FoldTiming) -> tuple[int, int, int]:
    """SCALE-Sim 3.0.0's (ifmap reads, filter reads, ofmap writes) in words for one GEMM."""
    rule, fr, fc = timing.dataflow, timing.row_folds, timing.col_folds
    m, k, n = work.m, work.k, work.n
    writes = m * n * rule.folds_along("k", fr, fc)
    if not rule.chunks_k:  # SCALE-Sim's output-stationary counting artefact
        writes += timing.folds * (timing.rows + timing.cols)
    return m * k * rule.folds_along("n", fr, fc), k * n * rule.folds_along("m", fr, fc), writes


def _dram_passes(rule: DataflowRule, lacks: str, timing: FoldTiming, whole_bytes: int,
                 slice_bytes: int, capacity: float) -> int:
    """How often an operand lacking GEMM dimension `lacks` is fetched from DRAM: once, unless it
    is re-read across folds and what the re-reads share does not fit its buffer (the whole
    operand across column folds, one column fold's slice across row folds)."""
    if lacks == rule.cols and whole_bytes >= capacity:
        return timing.col_folds
    if lacks == rule.rows and slice_bytes >= capacity:
        return timing.row_folds
    return 1


def gemm_traffic(work: GemmWork, timing: FoldTiming, widths: Widths,
                 capacities: Capacities) -> Traffic:
    """Traffic of the whole layer (`work.count` GEMMs) under the model in the module docstring."""
    rule, cols = timing.dataflow, timing.cols
    m, k, n = work.m, work.k, work.n
    fr = timing.row_folds
    ifmap_reads, filter_reads, _ = scalesim_sram_counts(work, timing)
    ifmap_bytes = _bytes(work.ifmap_elements, widths.activation)
    filter_bytes = _bytes(work.filter_elements, widths.weight)

    def column_slice(extents: dict[str, int]) -> int:
        """Elements of an operand with GEMM extents `extents` that one column fold uses."""
        return prod(min(cols, size) if dim == rule.cols else size for dim, size in extents.items())

    ifmap_passes = _dram_passes(rule, "n", timing, ifmap_bytes,
                                _bytes(column_slice({"m": m, "k": k}), widths.activation),
                                capacities.ifmap)
    filter_passes = _dram_passes(rule, "m", timing, filter_bytes,
                                 _bytes(column_slice({"k": k, "n": n}), widths.weight),
                                 capacities.filter)
    spill_rounds = 0
    if rule.chunks_k:
        out_writes, out_reads, out_bits = m * n * fr, m * n * (fr - 1), widths.partial_sum
        if _bytes(column_slice({"m": m, "n": n}), widths.partial_sum) >= capacities.ofmap:
            spill_rounds = fr - 1
    else:
        out_writes, out_reads, out_bits = m * n, 0, widths.activation
    spill = spill_rounds * _bytes(m * n, widths.partial_sum)
    per_gemm = Traffic(
        ifmap_sram_read=_bytes(ifmap_reads, widths.activation),
        filter_sram_read=_bytes(filter_reads, widths.weight),
        ofmap_sram_write=_bytes(out_writes, out_bits),
        ofmap_sram_read=_bytes(out_reads, out_bits),
        ifmap_dram_read=ifmap_passes * ifmap_bytes,
        filter_dram_read=filter_passes * filter_bytes,
        ofmap_dram_write=_bytes(work.ofmap_elements, widths.activation) + spill,
        ofmap_dram_read=spill,
    )
    return per_gemm.scaled(work.count)
