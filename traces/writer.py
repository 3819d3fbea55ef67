"""Writes a trace atomically: into a temporary file beside the destination, renamed on success.

    with TraceWriter("run.h5", RunMetadata(model="mnist.onnx", seed=0)) as trace:
        for batch in ...:
            trace.append_tensors("conv1", reference=ref, codes=codes, decoded=dec)
        trace.add_layer(LayerRecord(name="conv1", op="Conv", ...))
        trace.set_results({"agreement": 0.99})

Leaving the block by an exception (KeyboardInterrupt included) deletes the temporary file and
leaves nothing at the destination; a previous file there stays untouched.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from formats.errors import RsimError
from traces.schema import (
    FORMAT_TAG,
    SCHEMA_VERSION,
    TENSOR_KINDS,
    LayerRecord,
    RunMetadata,
    validated,
)

_CHUNK_BYTES = 1 << 19  # target chunk size: HDF5's sweet spot is roughly 10 KiB to 1 MiB
_GZIP_LEVEL = 1  # twice the speed of level 4 at about the same ratio on activations


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _create_temporary(path: Path) -> Path:
    """Create an empty temporary file beside `path`, or say why a trace cannot go there."""
    if path.is_dir():
        raise RsimError(f"trace path '{path}' is a directory; give a file name such as run.h5")
    if not path.parent.is_dir():
        raise RsimError(f"cannot write trace '{path}': '{path.parent}' is not an existing folder")
    temporary = _temporary_sibling(path)
    try:
        with open(temporary, "xb"):
            pass
    except OSError as error:
        raise RsimError(f"cannot write trace '{path}': {error.strerror or error}") from None
    return temporary


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise RsimError naming `path` unless a trace can be created there (run it before compute)."""
    _create_temporary(Path(path)).unlink()


class TraceWriter:
    """Context manager that builds a trace file; see the module docstring and traces/SCHEMA.md.

    Constructing it already creates the temporary file, so an unwritable destination fails
    before any simulation work.
    """

    def __init__(
        self, path: str | os.PathLike[str], metadata: RunMetadata | Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.metadata: RunMetadata = validated(RunMetadata, metadata or {}, "trace metadata")
        self._temporary = _create_temporary(self.path)
        try:
            self._file = h5py.File(self._temporary, "w", track_order=True)
            self._write_metadata()
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise
        self._groups: dict[str, h5py.Group] = {}
        self._recorded: set[str] = set()
        self._results: dict[str, float] = dict(self.metadata.results)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def is_open(self) -> bool:
        return bool(self._file)

    def _write_metadata(self) -> None:
        attrs = self._file.attrs
        attrs["format"] = FORMAT_TAG
        attrs["schema_version"] = np.int64(SCHEMA_VERSION)
        for key, value in self.metadata.model_dump(exclude={"results"}).items():
            attrs[key] = np.int64(value) if isinstance(value, int) else value
        self._file.create_group("layers", track_order=True)
        self._file.create_group("results", track_order=True)

    def _layer_group(self, name: str) -> h5py.Group:
        """The layer's group, created at first use: layers are numbered in that order."""
        if name not in self._groups:
            index = len(self._groups)
            group = self._file["layers"].create_group(f"{index:04d}", track_order=True)
            group.attrs["index"] = np.int64(index)
            group.attrs["name"] = name
            self._groups[name] = group
        return self._groups[name]

    def add_layer(self, record: LayerRecord | Mapping[str, Any]) -> None:
        """Write one layer's record (once per layer; call in network order)."""
        record = validated(LayerRecord, record, "trace layer record")
        if record.name in self._recorded:
            raise ValueError(f"layer '{record.name}' was already added to trace '{self.path}'")
        group = self._layer_group(record.name)
        group.attrs["op"] = record.op
        group.attrs["float_emulated"] = record.float_emulated
        group.attrs["acc_saturations"] = np.int64(record.acc_saturations)
        group.attrs["partial_sum_saturations"] = np.int64(record.partial_sum_saturations)
        group.attrs["bias_saturations"] = np.int64(record.bias_saturations)
        for section in ("formats", "schedule", "isolated", "propagated"):
            subgroup = group.create_group(section, track_order=True)
            for key, value in getattr(record, section).items():
                subgroup.attrs[key] = value if section == "formats" else np.float64(value)
        saturation = group.create_group("saturation")
        for dataset, counts in (
            ("accumulator_per_channel", record.acc_saturations_per_channel),
            ("partial_sum_per_channel", record.partial_sum_saturations_per_channel),
        ):
            if counts is not None:
                saturation.create_dataset(dataset, data=np.asarray(counts, dtype=np.int64))
        self._recorded.add(record.name)

    def append_tensors(self, layer: str, **tensors: Any) -> None:
        """Append one batch (axis 0 = samples) of the layer's `reference`, `codes`, `decoded`."""
        unknown = set(tensors) - set(TENSOR_KINDS)
        if unknown:
            raise ValueError(f"unknown tensor kinds {sorted(unknown)}; valid: {TENSOR_KINDS}")
        group = self._layer_group(layer).require_group("tensors")
        for kind, batch in tensors.items():
            batch = np.asarray(batch)
            if batch.ndim == 0:
                raise ValueError(f"layer '{layer}' {kind}: a batch needs a sample axis")
            if kind not in group:
                sample_bytes = max(1, batch.dtype.itemsize * math.prod(batch.shape[1:]))
                chunk_samples = max(1, _CHUNK_BYTES // sample_bytes)
                group.create_dataset(
                    kind,
                    shape=(0, *batch.shape[1:]),
                    maxshape=(None, *batch.shape[1:]),
                    dtype=batch.dtype,
                    chunks=(chunk_samples, *batch.shape[1:]),
                    compression="gzip",
                    compression_opts=_GZIP_LEVEL,
                    shuffle=True,
                )
            dataset = group[kind]
            if batch.shape[1:] != dataset.shape[1:]:
                raise ValueError(
                    f"layer '{layer}' {kind}: batch samples have shape {batch.shape[1:]}, "
                    f"earlier batches {dataset.shape[1:]}"
                )
            start = dataset.shape[0]
            dataset.resize(start + len(batch), axis=0)
            dataset[start:] = batch

    def set_results(self, results: Mapping[str, float | None]) -> None:
        """Record end-to-end results; None values (e.g. accuracy without labels) are left out."""
        self._results.update({k: float(v) for k, v in results.items() if v is not None})

    def close(self) -> None:
        """Finish the file and move it to its destination; every touched layer needs a record."""
        if not self.is_open:
            return
        missing = [name for name in self._groups if name not in self._recorded]
        if missing:
            self.abort()
            raise ValueError(f"trace '{self.path}': tensors but no record for layers {missing}")
        try:
            for key, value in self._results.items():
                self._file["results"].attrs[key] = np.float64(value)
            self._file["layers"].attrs["count"] = np.int64(len(self._groups))
            self._file.close()
            os.replace(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file; the destination is left as it was."""
        if self.is_open:
            self._file.close()
        self._temporary.unlink(missing_ok=True)
