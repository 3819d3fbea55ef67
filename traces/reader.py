"""Reads a trace back: `load(path)` gives its metadata and per-layer records; tensors on demand."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from formats.errors import RsimError
from traces.schema import FORMAT_TAG, SCHEMA_VERSION, TENSOR_KINDS, LayerRecord, validated


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs(group: h5py.Group) -> dict[str, Any]:
    return {key: _plain(value) for key, value in group.attrs.items()}


@dataclasses.dataclass(frozen=True)
class Trace:
    """A loaded trace: `metadata` (root attributes and `results`) and `layers` in network order."""

    path: Path
    metadata: dict[str, Any]
    layers: list[LayerRecord]
    _groups: dict[str, str] = dataclasses.field(repr=False)

    @functools.cached_property
    def by_name(self) -> dict[str, LayerRecord]:
        """The layers by name, built once (a trace is read-only once loaded; `layer` and `diff`
        look layers up one at a time)."""
        return {record.name: record for record in self.layers}

    def layer(self, name: str) -> LayerRecord:
        try:
            return self.by_name[name]
        except KeyError:
            raise RsimError(
                f"trace '{self.path}' has no layer '{name}'; layers: "
                f"{', '.join(r.name for r in self.layers) or '(none)'}"
            ) from None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer with the figures a table shows (missing ones are None; `formats`
        is the role → spec mapping)."""
        return [
            {
                "layer": r.name,
                "op": r.op,
                "formats": dict(r.formats),
                "sqnr_isolated_db": r.isolated.get("sqnr_db"),
                "sqnr_propagated_db": r.propagated.get("sqnr_db"),
                "max_abs_error": r.propagated.get("max_abs_error"),
                "clipped_share": r.propagated.get("clipped_share"),
                "acc_saturations": r.acc_saturations,
                "partial_sum_saturations": r.partial_sum_saturations,
                "cycles": r.schedule.get("cycles"),
                "utilization": r.schedule.get("utilization"),
                "float_emulated": r.float_emulated,
            }
            for r in self.layers
        ]

    def tensors(self, layer: str, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """The stored tensors of `layer` for samples start..stop, by kind (reference/codes/...)."""
        self.layer(layer)
        with _open(self.path) as file:
            group = file["layers"][self._groups[layer]]
            if "tensors" not in group:
                raise RsimError(
                    f"trace '{self.path}' stores no tensors for layer '{layer}' "
                    "(simulate with --trace-tensors)"
                )
            stored = group["tensors"]
            return {kind: stored[kind][start:stop] for kind in TENSOR_KINDS if kind in stored}


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise RsimError(f"trace file '{path}' does not exist")
    if path.is_dir():
        raise RsimError(f"trace file '{path}' is a directory, not an rsim trace")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise RsimError(f"trace file '{path}' is not a readable HDF5 file ({error})") from None


# schema version 1 spelled the partial-sum counters "psum"
_V1_NAMES = {"psum_saturations": "partial_sum_saturations",
             "psum_per_channel": "partial_sum_per_channel"}


def _renamed(values: dict[str, Any], version: int) -> dict[str, Any]:
    if version > 1:
        return values
    return {_V1_NAMES.get(key, key): value for key, value in values.items()}


def _read_layer(group: h5py.Group, where: str, version: int) -> LayerRecord:
    attrs = _renamed(_attrs(group), version)
    fields: dict[str, Any] = {
        key: attrs[key]
        for key in ("name", "op", "float_emulated", "acc_saturations", "partial_sum_saturations",
                    "bias_saturations")
        if key in attrs
    }
    for section in ("formats", "schedule", "isolated", "propagated"):
        if section in group:
            fields[section] = _renamed(_attrs(group[section]), version)
    saturation = group.get("saturation")
    if saturation is not None and version == 1 and "psum_per_channel" in saturation:
        saturation = {"partial_sum_per_channel": saturation["psum_per_channel"],
                      **{k: v for k, v in saturation.items() if k != "psum_per_channel"}}
    for field, dataset in (
        ("acc_saturations_per_channel", "accumulator_per_channel"),
        ("partial_sum_saturations_per_channel", "partial_sum_per_channel"),
    ):
        if saturation is not None and dataset in saturation:
            fields[field] = saturation[dataset][()].tolist()
    return validated(LayerRecord, fields, where)


def load(path: str | os.PathLike[str]) -> Trace:
    """Read the trace at `path`; a missing, corrupt or foreign file raises RsimError naming it."""
    path = Path(path)
    with _open(path) as file:
        if _plain(file.attrs.get("format")) != FORMAT_TAG:
            raise RsimError(f"'{path}' is an HDF5 file but not an rsim trace (no format tag)")
        version = _plain(file.attrs.get("schema_version"))
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
            raise RsimError(
                f"trace '{path}' has schema version {version!r}; "
                f"this rsim reads 1..{SCHEMA_VERSION}"
            )
        if "layers" not in file:
            raise RsimError(f"trace '{path}' is corrupt: it has no 'layers' group")
        metadata = _attrs(file)
        metadata["results"] = _attrs(file["results"]) if "results" in file else {}
        indexed = []
        for group_name, group in file["layers"].items():
            index = _plain(group.attrs.get("index"))
            if not isinstance(index, int):
                raise RsimError(
                    f"trace '{path}' is corrupt: layer group '{group_name}' has no index"
                )
            record = _read_layer(group, f"trace '{path}' layer group '{group_name}'", version)
            indexed.append((index, group_name, record))
    indexed.sort(key=lambda item: item[0])
    return Trace(
        path=path,
        metadata=metadata,
        layers=[record for _, _, record in indexed],
        _groups={record.name: group_name for _, group_name, record in indexed},
    )
