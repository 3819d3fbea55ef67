"""Compares two traces layer by layer: which layers drift more or less in B than in A, by how much.

Layers are matched by name. Drift is read from the propagated SQNR (isolated when a layer has no
propagated figure): B drifts *more* at a layer when its SQNR is lower than A's by more than
`tolerance_db`, *less* when higher by more than that, else the layer is the *same*.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from traces.reader import Trace, load
from traces.schema import LayerRecord

MORE, LESS, SAME = "more", "less", "same"


@dataclasses.dataclass(frozen=True)
class Change:
    """A figure in A and B and its change B − A (None when either side lacks it; equal infinities
    change by 0)."""

    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        if self.a == self.b:
            return 0.0
        return self.b - self.a


@dataclasses.dataclass(frozen=True)
class LayerDiff:
    """The key figures of one layer in both traces and the drift verdict (`more`/`less`/`same`)."""

    name: str
    op: str
    sqnr_isolated_db: Change
    sqnr_propagated_db: Change
    clipped_share: Change
    acc_saturations: Change
    partial_sum_saturations: Change
    drift: str

    @property
    def sqnr_delta_db(self) -> float | None:
        """The SQNR change the verdict was read from."""
        chosen = self.sqnr_propagated_db
        if chosen.delta is None:
            chosen = self.sqnr_isolated_db
        return chosen.delta


def _verdict(delta_db: float | None, tolerance_db: float) -> str:
    if delta_db is None or math.isnan(delta_db) or abs(delta_db) <= tolerance_db:
        return SAME
    return MORE if delta_db < 0 else LESS


def _layer_diff(a: LayerRecord, b: LayerRecord, tolerance_db: float) -> LayerDiff:
    layer = LayerDiff(
        name=a.name,
        op=a.op if a.op == b.op else f"{a.op} → {b.op}",
        sqnr_isolated_db=Change(a.isolated.get("sqnr_db"), b.isolated.get("sqnr_db")),
        sqnr_propagated_db=Change(a.propagated.get("sqnr_db"), b.propagated.get("sqnr_db")),
        clipped_share=Change(a.propagated.get("clipped_share"), b.propagated.get("clipped_share")),
        acc_saturations=Change(a.acc_saturations, b.acc_saturations),
        partial_sum_saturations=Change(a.partial_sum_saturations, b.partial_sum_saturations),
        drift=SAME,
    )
    return dataclasses.replace(layer, drift=_verdict(layer.sqnr_delta_db, tolerance_db))


@dataclasses.dataclass(frozen=True)
class TraceDiff:
    """Per-layer differences of trace B against trace A, plus the end-to-end results."""

    a: Path
    b: Path
    layers: list[LayerDiff]
    only_in_a: list[str]
    only_in_b: list[str]
    results: dict[str, Change]

    def _ranked(self, drift: str) -> list[LayerDiff]:
        chosen = [layer for layer in self.layers if layer.drift == drift]
        return sorted(chosen, key=lambda layer: abs(layer.sqnr_delta_db or 0.0), reverse=True)

    @property
    def more_drift(self) -> list[LayerDiff]:
        """Layers where B is worse than A, largest SQNR loss first."""
        return self._ranked(MORE)

    @property
    def less_drift(self) -> list[LayerDiff]:
        """Layers where B is better than A, largest SQNR gain first."""
        return self._ranked(LESS)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per common layer, in A's layer order."""
        return [
            {
                "layer": layer.name,
                "op": layer.op,
                **{
                    f"{figure}_{side}": getattr(getattr(layer, figure), side)
                    for figure in (
                        "sqnr_isolated_db",
                        "sqnr_propagated_db",
                        "clipped_share",
                        "acc_saturations",
                        "partial_sum_saturations",
                    )
                    for side in ("a", "b", "delta")
                },
                "drift": layer.drift,
            }
            for layer in self.layers
        ]


def diff(
    a: Trace | str | os.PathLike[str], b: Trace | str | os.PathLike[str], tolerance_db: float = 0.1
) -> TraceDiff:
    """Compare trace `b` against trace `a` (loaded traces or paths; see the module docstring)."""
    a, b = (trace if isinstance(trace, Trace) else load(trace) for trace in (a, b))
    b_layers = b.by_name
    a_names = [layer.name for layer in a.layers]
    a_name_set = set(a_names)
    results_a, results_b = a.metadata.get("results", {}), b.metadata.get("results", {})
    return TraceDiff(
        a=a.path,
        b=b.path,
        layers=[
            _layer_diff(layer, b_layers[layer.name], tolerance_db)
            for layer in a.layers
            if layer.name in b_layers
        ],
        only_in_a=[name for name in a_names if name not in b_layers],
        only_in_b=[layer.name for layer in b.layers if layer.name not in a_name_set],
        results={
            key: Change(results_a.get(key), results_b.get(key))
            for key in [*results_a, *(k for k in results_b if k not in results_a)]
        },
    )
