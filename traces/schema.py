"""The typed records a trace holds, shared by the writer, the reader and the simulator.

The HDF5 layout they map to is documented in traces/SCHEMA.md (schema version `SCHEMA_VERSION`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import pydantic

from formats.errors import RsimError

SCHEMA_VERSION = 2
FORMAT_TAG = "rsim-trace"
TENSOR_KINDS = ("reference", "codes", "decoded")
SCHEDULE_FIGURES = (
    "cycles",
    "utilization",
    "mapping_efficiency",
    "sram_bytes",
    "dram_bytes",
    "energy_pj",
)


def _installed_rsim_version() -> str:
    try:
        return importlib.metadata.version("rsim")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class RunMetadata(pydantic.BaseModel):
    """What produced a trace: the root attributes of the file, plus the end-to-end results."""

    model_config = pydantic.ConfigDict(extra="forbid")

    rsim_version: str = pydantic.Field(default_factory=_installed_rsim_version)
    model: str = ""
    model_sha256: str = ""
    hwconfig: str = ""
    qspec: str = ""
    seed: int = 0
    command: str = ""
    time: str = pydantic.Field(default_factory=_now_iso)
    results: dict[str, float] = {}


def _channel_counts(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


Key = Annotated[str, pydantic.StringConstraints(min_length=1)]


class LayerRecord(pydantic.BaseModel):
    """Everything a trace says about one layer, except its optional tensors.

    `isolated`/`propagated` hold `rsim.metrics.ErrorStats.as_dict()`; `schedule` holds figures
    named as in `SCHEDULE_FIGURES`; `formats` maps a role (weights, activations, accumulator, ...)
    to a format spec string.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str
    op: str
    formats: dict[Key, str] = {}
    schedule: dict[Key, float] = {}
    isolated: dict[Key, float] = {}
    propagated: dict[Key, float] = {}
    acc_saturations: int = 0
    partial_sum_saturations: int = 0
    bias_saturations: int = 0
    acc_saturations_per_channel: list[int] | None = None
    partial_sum_saturations_per_channel: list[int] | None = None
    float_emulated: bool = False

    _per_channel_from_arrays = pydantic.field_validator(
        "acc_saturations_per_channel", "partial_sum_saturations_per_channel", mode="before"
    )(_channel_counts)


def validated(model: type[pydantic.BaseModel], value: Any, what: str) -> Any:
    """`value` (a model instance or a mapping) as `model`, or an RsimError naming `what`."""
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise RsimError(f"{what}: expected a {model.__name__} or a mapping, got {type(value)}")
    try:
        return model.model_validate(dict(value))
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors()
        )
        raise RsimError(f"{what}: {problems}") from None
