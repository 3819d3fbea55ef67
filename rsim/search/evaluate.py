"""What every bit-width search needs: the data in memory (as the model's first layer sees it),
the float baseline, float ranges of the tensors, and the quantized top-1 accuracy of a design
(accelerator + per-layer qspec entries) scored as `rsim.score` scores (mean over batches)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from formats.errors import RsimError
from hwconfigs.schema import Accelerator
from rsim.metrics import label_ranks
from rsim.network import Network
from rsim.quant.qspec import QSpec
from rsim.scoring import BatchMeans
from rsim.simulation import prepare

MAC_OPS = ("conv", "conv_transpose", "gemm", "matmul")


@dataclass
class SearchData:
    """The scored batches in memory (x already through the model's input transform)."""

    network: Network
    batches: list[tuple[np.ndarray, np.ndarray]]
    ties: str
    seed: int = 0

    @property
    def prediction(self) -> str:
        scoring = self.network.scoring
        return self.network.outputs[0] if scoring is None else scoring.prediction

    def _top1(self, outputs: list[np.ndarray]) -> float:
        means = BatchMeans()
        for logits, (_, y) in zip(outputs, self.batches, strict=True):
            means.add({"top1": float(np.mean(label_ranks(logits, y, self.ties) < 1))})
        return means.mean("top1")

    def float_top1(self) -> float:
        return self._top1([self.network.run_float(x)[self.prediction] for x, _ in self.batches])

    def max_abs(self, tensors: list[str], batches: int) -> dict[str, float]:
        """max |x| of each tensor (IR names; a Caffe blob's final value, as Caffe reads its
        ranges after a whole forward pass) over the first `batches` batches."""
        final = {t: self.network.resolve(self.network.final_versions.get(t, t)) for t in tensors}
        found = dict.fromkeys(tensors, 0.0)
        for x, _ in self.batches[:batches]:
            values = self.network.run_float(x, collect=True)
            values[self.network.inputs[0]] = x
            for tensor, kept in final.items():
                found[tensor] = max(found[tensor], float(np.max(np.abs(values[kept]))))
        return found

    def quantized_top1(self, hw: Accelerator, entries: list[dict],
                       progress: Callable[[], None] | None = None) -> float:
        """Top-1 of the network on `hw` with the qspec `entries` (mean over batches)."""
        spec = QSpec.model_validate({"layers": entries})
        dataset_like = _Batches(self.batches)
        run = prepare(self.network, hw, spec, dataset_like, len(self.batches[0][0]), self.seed)
        target = self.network.resolve(self.prediction)
        outputs = []
        for index, (x, _) in enumerate(self.batches):
            rng = np.random.default_rng([self.seed, 0, index])
            final = None
            for quant, _, outcome in run.propagate(x, rng):
                if quant.layer.outputs[0] == target:
                    final = outcome.out.values()
            outputs.append(final)
            if progress is not None:
                progress()
        return self._top1(outputs)


class _Batches:
    """The in-memory batches as the dataset `prepare` calibrates on (fixed formats need none)."""

    def __init__(self, batches):
        self._batches = batches
        self.source = "<search batches>"

    def iter_batches(self, batch_size: int, limit: int | None = None):
        done = 0
        for x, y in self._batches:
            if limit is not None and done >= limit:
                return
            yield x, y
            done += len(x)


def load_batches(network: Network, dataset, batch_size: int, iterations: int | None,
                 ties: str) -> SearchData:
    """The first `iterations` batches (all by default) of labelled data, in memory."""
    if dataset.labels is None:
        raise RsimError(f"data '{dataset.source}' has no labels; a bit-width search scores "
                        "accuracy and needs them")
    limit = None if iterations is None else iterations * batch_size
    batches = [(x, y) for x, y in dataset.iter_batches(batch_size, limit)]
    if not batches:
        raise RsimError(f"data '{dataset.source}' holds no samples")
    return SearchData(network, batches, ties)


def mac_layers(network: Network) -> list:
    """The layers a search quantizes: those with constant weights that multiply-accumulate."""
    return [layer for layer in network.layers
            if layer.op in MAC_OPS and ("weight" in layer.params or "constant" in layer.params)]
