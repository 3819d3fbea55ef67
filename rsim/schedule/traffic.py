"""SRAM and DRAM traffic of one GEMM on the array, from its folds and the buffer sizes.

SRAM counts follow SCALE-Sim's convention for what the array reads: the im2col-expanded operand,
re-read once per fold that needs it (OS: ifmap x column folds, filter x row folds; WS: ifmap x
column folds, filter once; IS: ifmap once, filter x column folds). Outputs: OS writes each output
once at the activation width; WS/IS write a partial sum per row fold at the psum width and read
back all but the first. (SCALE-Sim 3.0.0 also adds an OS counting artefact, folds x (R + C)
writes, that is not real traffic and is left out here; `scalesim_sram_counts` has it.)

DRAM model (documented simplification, not SCALE-Sim's prefetch simulation): every operand is
fetched once (its unique footprint) and every output written once, plus the refetches forced by
a buffer too small for the operand reused across folds. Folds run column-fold outer, row-fold
inner, so:
- OS re-streams the whole ifmap for every column fold: if the ifmap does not fit in its SRAM it
  is fetched col_folds times; each column fold's filter slice (K x C) is reused over the row
  folds: if it does not fit, the filter is fetched row_folds times;
- WS re-streams the ifmap per column fold (same rule); each weight is used by one fold only;
- IS re-streams the filter per column fold (fetched col_folds times when it does not fit); each
  input is used by one fold only;
- WS/IS keep a column fold's partial sums (M x C or C x N of them) in the ofmap SRAM across the
  row folds; if they do not fit they spill: (row_folds - 1) writes and reads of every output.
Each SRAM is double buffered as in SCALE-Sim: one half feeds the array while the other is
filled (or drained), so an operand "fits" when its bytes are fewer than half the SRAM. With this
rule the ifmap DRAM reads equal SCALE-Sim 3.0.0's CALC-mode counts on every golden layer, and the
filter reads on every WS/IS layer (OS filter reads there exceed the footprint by a few percent
through its prefetch window, which this model does not reproduce).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsim.schedule.geometry import GemmWork
from rsim.schedule.systolic import FoldTiming


def _bytes(elements: int, bits: int) -> int:
    return -(-elements * bits // 8)


@dataclass(frozen=True)
class Widths:
    """Bits per stored element of each operand stream."""

    weight: int
    activation: int
    psum: int


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
    m, k, n = work.m, work.k, work.n
    fr, fc = timing.row_folds, timing.col_folds
    if timing.dataflow == "os":
        return m * k * fc, k * n * fr, m * n + timing.folds * (timing.rows + timing.cols)
    if timing.dataflow == "ws":
        return m * k * fc, k * n, m * n * fr
    return k * m, n * k * fc, m * n * fr


def gemm_traffic(work: GemmWork, timing: FoldTiming, widths: Widths,
                 capacities: Capacities) -> Traffic:
    """Traffic of the whole layer (`work.count` GEMMs) under the model in the module docstring."""
    m, k, n = work.m, work.k, work.n
    fr, fc = timing.row_folds, timing.col_folds
    ifmap_reads, filter_reads, _ = scalesim_sram_counts(work, timing)
    ifmap_bytes = _bytes(work.ifmap_elements, widths.activation)
    filter_bytes = _bytes(work.filter_elements, widths.weight)
    ifmap_passes = filter_passes = 1
    spill_rounds = 0
    if timing.dataflow == "os":
        out_writes, out_reads, out_bits = m * n, 0, widths.activation
        if ifmap_bytes >= capacities.ifmap:
            ifmap_passes = fc
        if _bytes(k * min(timing.cols, n), widths.weight) >= capacities.filter:
            filter_passes = fr
    else:
        out_writes, out_reads, out_bits = m * n * fr, m * n * (fr - 1), widths.psum
        if timing.dataflow == "ws":
            if ifmap_bytes >= capacities.ifmap:
                ifmap_passes = fc
            column_psums = m * min(timing.cols, n)
        else:
            if filter_bytes >= capacities.filter:
                filter_passes = fc
            column_psums = min(timing.cols, m) * n
        if _bytes(column_psums, widths.psum) >= capacities.ofmap:
            spill_rounds = fr - 1
    spill = spill_rounds * _bytes(m * n, widths.psum)
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
