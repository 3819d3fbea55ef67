"""`FloatReference`: the float reference path of a network on a dataset, batch by batch, computed
once and shared.

A simulation needs every layer's float output for each batch (the reference both error
measurements compare with) and, for dynamic formats, the float tensors of the calibration
samples, which are the first batches again. A `FloatReference` computes a batch's tensors
(`Network.run_float(collect=True)`) and keeps them:

- in memory, up to `memory_budget` bytes (by default enough for the calibration batches of one
  run, so calibration and the reference pass share one float pass);
- or, with a `folder`, on disk for every batch (one .npy per tensor and batch, read back
  memory-mapped), so that many runs, in this process or in others (a sweep's workers), reuse
  one float pass whatever its size.

A batch is identified by its index and its size; the reference is valid for one
(network, dataset, batch size), which `key` records and `check` enforces.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from formats.errors import RsimError
from rsim.network import Network

DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024  # bytes of tensors kept in memory between uses


class FloatReference:
    """The float tensors of `network` on the batches of one dataset (see the module docstring).

    `source` names the data (a path or a digest) and with `batch_size` identifies the batches;
    `folder` keeps every batch on disk; `memory_budget` bounds what is kept in memory. A
    reference of one run (`shared=False`) hands a batch kept in memory over once and forgets it;
    a shared one keeps it for every run."""

    def __init__(self, network: Network, source: str, batch_size: int, *,
                 folder: str | Path | None = None, shared: bool = True,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.network = network
        self.batch_size = int(batch_size)
        self.key = {"model_sha256": network.sha256, "data": source,
                    "batch_size": self.batch_size}
        self.folder = None if folder is None else Path(folder)
        self.memory_budget = memory_budget
        self.shared = shared
        self._kept: dict[int, dict[str, np.ndarray]] = {}
        self._kept_bytes = 0
        self.computed = 0  # batches run through the float path by this object (for tests)
        if self.folder is not None:
            self._open_folder()

    def check(self, network: Network, batch_size: int) -> None:
        """One error unless this reference was made for `network` and `batch_size`."""
        if network.sha256 != self.key["model_sha256"] or batch_size != self.batch_size:
            raise RsimError(f"the float reference was computed for model {self.key['model_sha256']}"
                            f" in batches of {self.batch_size}; this run has model "
                            f"{network.sha256} in batches of {batch_size}")

    def batch(self, index: int, x: np.ndarray, keep: bool | None = None) -> dict[str, np.ndarray]:
        """Every tensor the float path keeps for batch `index` (whose samples are `x`), the
        graph input included. A batch computed here is kept for a later call when `keep` says
        so (default: when the reference is shared; a run's own reference keeps only the
        calibration batches, which its first batches reuse)."""
        kept = self._kept.get(index) if self.shared else self._kept.pop(index, None)
        if kept is not None and len(kept[self.network.inputs[0]]) == len(x):
            return kept
        stored = self._load(index, len(x))
        if stored is not None:
            return stored
        tensors = self.network.run_float(x, collect=True)
        tensors[self.network.inputs[0]] = x
        self.computed += 1
        if self.shared if keep is None else keep:
            self._keep(index, tensors)
        return tensors

    # ----- memory ----------------------------------------------------------------------------
    def _keep(self, index: int, tensors: dict[str, np.ndarray]) -> None:
        if self.folder is not None:
            self._store(index, tensors)
            return
        size = sum(a.nbytes for a in tensors.values())
        if self._kept_bytes + size <= self.memory_budget:
            self._kept[index] = tensors
            self._kept_bytes += size

    # ----- disk ------------------------------------------------------------------------------
    def _open_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "reference.json"
        if key_file.exists():
            stored = json.loads(key_file.read_text())
            if stored != self.key:
                raise RsimError(f"{self.folder}: holds the float reference of another model, data "
                                f"or batch size ({stored}); use another folder")
        else:
            key_file.write_text(json.dumps(self.key))

    def _batch_folder(self, index: int, size: int) -> Path:
        return self.folder / f"batch{index:06d}-{size}"

    def _store(self, index: int, tensors: dict[str, np.ndarray]) -> None:
        folder = self._batch_folder(index, len(tensors[self.network.inputs[0]]))
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(exist_ok=True)
        names = {}
        for position, (name, array) in enumerate(tensors.items()):
            names[name] = f"t{position:04d}.npy"
            np.save(partial / names[name], np.ascontiguousarray(array))
        (partial / "tensors.json").write_text(json.dumps(names))
        try:
            partial.rename(folder)  # complete batches only: another process may have won
        except OSError:
            pass

    def _load(self, index: int, size: int) -> dict[str, np.ndarray] | None:
        if self.folder is None:
            return None
        folder = self._batch_folder(index, size)
        if not (folder / "tensors.json").exists():
            return None
        names = json.loads((folder / "tensors.json").read_text())
        return {name: np.load(folder / file, mmap_mode="r") for name, file in names.items()}


def data_digest(x: np.ndarray) -> str:
    """A short digest of samples, naming array data in a reference's key."""
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]
