"""Traces: the HDF5 record of a simulation run (schema in traces/SCHEMA.md), its writer and reader,
the comparison of two runs and the drift and Pareto plots.

Imports only `formats` of ours (plus numpy, h5py, pydantic; matplotlib lazily for plots).
"""

from traces.compare import LayerDiff, TraceDiff, diff
from traces.drawing import plot, plot_pareto
from traces.pareto import pareto_front
from traces.reader import Trace, load
from traces.schema import (
    SCHEDULE_FIGURES,
    SCHEMA_VERSION,
    TENSOR_KINDS,
    LayerRecord,
    RunMetadata,
)
from traces.writer import TraceWriter, check_writable

__all__ = [
    "SCHEDULE_FIGURES",
    "SCHEMA_VERSION",
    "TENSOR_KINDS",
    "LayerDiff",
    "LayerRecord",
    "RunMetadata",
    "Trace",
    "TraceDiff",
    "TraceWriter",
    "check_writable",
    "diff",
    "load",
    "pareto_front",
    "plot",
    "plot_pareto",
]
