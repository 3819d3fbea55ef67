"""Map layers (as GEMM work) onto an accelerator: folds, cycles, utilization, traffic, energy.

Cycles here are counts of cycles (folds x fold length per GEMM, GEMMs of a layer one after
another); SCALE-Sim reports the 0-based index of the last cycle instead, one less, which
`rsim.scalesim_io` reproduces. The model is stall-free: DRAM shows up as `dram_cycles`, the
cycles the DRAM interface needs for the layer's traffic, so a layer with dram_cycles > cycles is
memory bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hwconfigs.schema import Accelerator, Datapath, format_bits, operand_bits
from rsim.schedule.geometry import GemmWork
from kernels.plan import ReductionPlan
from rsim.schedule.plan import reduction_plan
from rsim.schedule.systolic import FoldTiming, fold_timing
from rsim.schedule.traffic import Capacities, Traffic, Widths, gemm_traffic

KIB = 1024


@dataclass(frozen=True)
class LayerSchedule:
    """The mapping of one layer: GEMM shape, folds, cycles, traffic, energy and reduction plan."""

    work: GemmWork
    timing: FoldTiming
    traffic: Traffic
    plan: ReductionPlan
    cycles: int
    dram_cycles: int
    energy_pj: float

    @property
    def name(self) -> str:
        return self.work.name

    @property
    def folds(self) -> int:
        """Folds of the whole layer (per GEMM folds x number of GEMMs)."""
        return self.work.count * self.timing.folds

    @property
    def utilization(self) -> float:
        """MACs / (R x C x cycles): the share of PE-cycles doing useful work."""
        return self.work.macs / (self.timing.rows * self.timing.cols * self.cycles)

    @property
    def mapping_efficiency(self) -> float:
        return self.timing.mapping_efficiency


@dataclass(frozen=True)
class Schedule:
    """Per-layer schedules of a network on one accelerator, with totals."""

    accelerator: Accelerator
    batch: int
    layers: tuple[LayerSchedule, ...]

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.work.macs for layer in self.layers)

    @property
    def utilization(self) -> float:
        array = self.accelerator.array
        return self.macs / (array.rows * array.cols * self.cycles) if self.cycles else 0.0

    @property
    def sram_bytes(self) -> int:
        return sum(layer.traffic.sram_bytes for layer in self.layers)

    @property
    def dram_bytes(self) -> int:
        return sum(layer.traffic.dram_bytes for layer in self.layers)

    @property
    def energy_pj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def seconds(self) -> float:
        """Stall-free run time at the accelerator's clock."""
        return self.cycles / (self.accelerator.array.clock_mhz * 1e6)

    def layer(self, name: str) -> LayerSchedule:
        """The schedule of the layer called `name` (KeyError if absent)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def schedule_layer(work: GemmWork, accelerator: Accelerator, *, os_fill: str = "scalesim",
                   datapath: Datapath | None = None) -> LayerSchedule:
    """Schedule one layer's GEMMs on the accelerator (see the module docstring); `datapath`
    replaces the accelerator's for this layer (a qspec override: widths, registers)."""
    array, memory = accelerator.array, accelerator.memory
    datapath = accelerator.datapath if datapath is None else datapath
    timing = fold_timing(work.m, work.k, work.n, rows=array.rows, cols=array.cols,
                         dataflow=array.dataflow, os_fill=os_fill)
    plan = reduction_plan(array, datapath)
    partial_sum = datapath.partial_sum or datapath.accumulator
    widths = Widths(weight=format_bits(datapath.weights),
                    activation=format_bits(datapath.activations),
                    partial_sum=partial_sum.bits or format_bits(partial_sum.format))
    capacities = Capacities(ifmap=memory.ifmap_sram_kib * KIB / 2,
                            filter=memory.filter_sram_kib * KIB / 2,
                            ofmap=memory.ofmap_sram_kib * KIB / 2)
    traffic = gemm_traffic(work, timing, widths, capacities)
    energy = accelerator.energy
    energy_pj = (work.macs * energy.mac_energy_pj(operand_bits(datapath))
                 + traffic.sram_bytes * energy.sram_pj_per_byte
                 + traffic.dram_bytes * energy.dram_pj_per_byte)
    dram_cycles = -int(-traffic.dram_bytes // memory.dram_bytes_per_cycle)
    return LayerSchedule(work, timing, traffic, plan, work.count * timing.cycles, dram_cycles,
                         energy_pj)


def schedule(layers: Iterable[GemmWork], accelerator: Accelerator, *, batch: int = 1,
             os_fill: str = "scalesim",
             datapaths: Mapping[str, Datapath] | None = None) -> Schedule:
    """Schedule every layer; `batch` is recorded (the GEMM work already includes it);
    `datapaths` gives per-layer datapaths by layer name (the others use the accelerator's)."""
    datapaths = datapaths or {}
    return Schedule(accelerator, batch, tuple(
        schedule_layer(work, accelerator, os_fill=os_fill, datapath=datapaths.get(work.name))
        for work in layers))


ROW_COLUMNS = ("layer", "op", "M", "K", "N", "gemms", "folds", "k_chunk", "cycles",
               "utilization", "mapping_efficiency", "sram_bytes", "dram_bytes", "dram_cycles",
               "energy_uj")


def schedule_rows(result: Schedule) -> list[dict]:
    """One dict per layer (ROW_COLUMNS) and a final "total" row, for tables, CSV and JSON.

    The total's mapping efficiency is the MAC-weighted mean over layers; its utilization is
    MACs / (R x C x total cycles).
    """
    rows = []
    for layer in result.layers:
        work = layer.work
        rows.append({
            "layer": layer.name, "op": work.op, "M": work.m, "K": work.k, "N": work.n,
            "gemms": work.count, "folds": layer.folds, "k_chunk": layer.plan.k_chunk,
            "cycles": layer.cycles, "utilization": layer.utilization,
            "mapping_efficiency": layer.mapping_efficiency,
            "sram_bytes": layer.traffic.sram_bytes, "dram_bytes": layer.traffic.dram_bytes,
            "dram_cycles": layer.dram_cycles, "energy_uj": layer.energy_pj * 1e-6,
        })
    macs = result.macs
    weighted_mapping = (sum(layer.mapping_efficiency * layer.work.macs for layer in result.layers)
                        / macs if macs else 0.0)
    rows.append({
        "layer": "total", "op": "", "M": None, "K": None, "N": None,
        "gemms": sum(layer.work.count for layer in result.layers),
        "folds": sum(layer.folds for layer in result.layers), "k_chunk": None,
        "cycles": result.cycles, "utilization": result.utilization,
        "mapping_efficiency": weighted_mapping, "sram_bytes": result.sram_bytes,
        "dram_bytes": result.dram_bytes,
        "dram_cycles": sum(layer.dram_cycles for layer in result.layers),
        "energy_uj": result.energy_pj * 1e-6,
    })
    return rows
