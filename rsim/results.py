"""What a simulation returns: per-layer results (`LayerResult`) and the end-to-end result
(`SimResult`), with their trace records; `rsim.simulation` produces them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import traces
from rsim.metrics import ErrorStats
from rsim.schedule import LayerSchedule, Schedule


@dataclass
class LayerResult:
    """What the simulation measured for one layer."""

    name: str
    op: str
    formats: dict[str, str]
    isolated: ErrorStats
    propagated: ErrorStats
    acc_saturations: int
    partial_sum_saturations: int
    acc_saturations_per_channel: np.ndarray | None
    partial_sum_saturations_per_channel: np.ndarray | None
    isolated_acc_saturations: int
    isolated_partial_sum_saturations: int
    bias_saturations: int
    float_emulated: bool
    schedule: LayerSchedule | None

    def record(self) -> traces.LayerRecord:
        """This layer as a trace record."""
        figures = {}
        if self.schedule is not None:
            s = self.schedule
            figures = {"cycles": s.cycles, "utilization": s.utilization,
                       "mapping_efficiency": s.mapping_efficiency,
                       "sram_bytes": s.traffic.sram_bytes, "dram_bytes": s.traffic.dram_bytes,
                       "energy_pj": s.energy_pj}
        isolated = self.isolated.as_dict() | {
            "acc_saturations": self.isolated_acc_saturations,
            "partial_sum_saturations": self.isolated_partial_sum_saturations}
        return traces.LayerRecord(
            name=self.name, op=self.op, formats=self.formats, schedule=figures,
            isolated=isolated, propagated=self.propagated.as_dict(),
            acc_saturations=self.acc_saturations, partial_sum_saturations=self.partial_sum_saturations,
            bias_saturations=self.bias_saturations,
            acc_saturations_per_channel=self.acc_saturations_per_channel,
            partial_sum_saturations_per_channel=self.partial_sum_saturations_per_channel,
            float_emulated=self.float_emulated)


@dataclass
class SimResult:
    """End-to-end and per-layer results of a simulation run."""

    samples: int
    agreement: float | None
    accuracy_float: float | None
    accuracy_sim: float | None
    top5_float: float | None
    top5_sim: float | None
    layers: dict[str, LayerResult]
    schedule: Schedule
    trace: Path | None = None

    @property
    def cycles(self) -> int:
        return self.schedule.cycles

    @property
    def energy_pj(self) -> float:
        return self.schedule.energy_pj

    @property
    def utilization(self) -> float:
        return self.schedule.utilization

    def results(self) -> dict[str, float | None]:
        """End-to-end figures by name (as stored in traces)."""
        return {"samples": self.samples, "agreement": self.agreement,
                "accuracy_float": self.accuracy_float, "accuracy_sim": self.accuracy_sim,
                "top5_float": self.top5_float, "top5_sim": self.top5_sim,
                "cycles": self.cycles, "energy_pj": self.energy_pj,
                "utilization": self.utilization}
