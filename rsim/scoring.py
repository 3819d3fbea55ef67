"""`rsim.score`: top-1/top-5 accuracy (and the softmax loss where the model has one) of a network
in float and as the accelerator computes it, the way `caffe test` scores a net.

Caffe's test loop runs `iterations` batches and reports the mean of the per-batch figures; so
does `score` (a last, partial batch counts as one batch, as Caffe would count it). The scored
tensor is the one the model's Accuracy/loss layers read (Caffe), else the first graph output.
Ties between the top logits are ranked by a stated rule (`rsim.metrics.TIE_RULES`): heavily
quantized nets have many tied top logits, and Caffe's Accuracy layer changed its rule in 2017.
Only the propagated bit-accurate path runs (no per-layer metrics), so a score costs about two
inferences per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formats.errors import RsimError
from hwconfigs.schema import Accelerator
from rsim.loader import load
from rsim.metrics import TIE_RULES, label_ranks
from rsim.network import Network
from rsim.options import RunOptions
from rsim.quant.qspec import load_qspec, with_model_quantization
from rsim.simulation import Progress, as_dataset, model_data, prepare, resolve_accelerator

FLT_MIN = float(np.finfo(np.float32).tiny)  # Caffe's SoftmaxWithLoss clamps probabilities here


@dataclass
class ScoreResult:
    """The mean over batches of each figure, float and quantized (None: not computed)."""

    samples: int
    batches: int
    tie_rule: str
    top_k: tuple[int, ...]
    top1_float: float | None
    top1_quantized: float | None
    top5_float: float | None
    top5_quantized: float | None
    loss_float: float | None
    loss_quantized: float | None

    def as_dict(self) -> dict[str, Any]:
        """The figures under the names traces use, for JSON."""
        return {key: getattr(self, key) for key in (
            "top1_float", "top1_quantized", "top5_float", "top5_quantized", "loss_float",
            "loss_quantized", "samples", "batches", "tie_rule")}


class BatchMeans:
    """The mean over batches of per-batch figures."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.batches = 0

    def add(self, figures: dict[str, float]) -> None:
        for key, value in figures.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.batches += 1

    def mean(self, key: str) -> float | None:
        return self.sums[key] / self.batches if key in self.sums and self.batches else None


def batch_figures(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], ties: str,
                  loss: bool) -> dict[str, float]:
    """One batch's top-k accuracies (and softmax loss) of `logits` (N, classes, ...)."""
    scores = logits.reshape(len(logits), logits.shape[1], -1)[:, :, 0] if logits.ndim > 2 \
        else logits
    ranks = label_ranks(scores, labels, ties)
    figures = {f"top{k}": float(np.mean(ranks < k)) for k in ks if k <= scores.shape[1]}
    if loss:
        shifted = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        chosen = np.take_along_axis(probabilities, labels[:, None].astype(np.intp), axis=1)
        figures["loss"] = float(np.mean(-np.log(np.maximum(chosen[:, 0], FLT_MIN))))
    return figures


def score(network: Network | str | Path, hw: str | Path | Accelerator | None = None,
          inputs: Any = None, labels: Any = None, qspec: Any = None, *,
          options: RunOptions | None = None, iterations: int | None = None,
          ties: str = "first", quantized: bool = True, progress: Progress | None = None,
          **option_values: Any) -> ScoreResult:
    """Score `network` on labelled data, in float and (unless `quantized=False`) on accelerator
    `hw` with `qspec` (a Ristretto prototxt carries its own: see `rsim.simulate`).

    `iterations` batches of `batch_size` samples are scored (default: all the data); `ties`
    ranks tied logits (`TIE_RULES`). Top-5 is reported only for more than 5 classes; the loss
    where the model has a SoftmaxWithLoss (Caffe)."""
    if ties not in TIE_RULES:
        raise RsimError(f"score: ties must be one of {', '.join(TIE_RULES)}, got {ties!r}")
    run_options = RunOptions.of(options, "score", **option_values)
    if not isinstance(network, Network):
        network = load(network)
    dataset = model_data(network, as_dataset(inputs, labels))
    if dataset.labels is None:
        raise RsimError(f"score: data '{dataset.source}' has no labels; scoring needs them "
                        "(--label-column, --y-name or labels=)")
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int)
                                   or iterations < 1):
        raise RsimError(f"score: iterations must be a positive integer, got {iterations!r}")
    batch = run_options.batch_size
    limit = run_options.limit
    if iterations is not None:
        limit = min(limit or iterations * batch, iterations * batch)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    if total == 0:
        raise RsimError(f"score: data '{dataset.source}' holds no samples to score")
    scoring = network.scoring
    prediction = network.outputs[0] if scoring is None else scoring.prediction
    ks = tuple(sorted({1, 5} | set(scoring.top_k if scoring else ())))
    loss = scoring is not None and scoring.softmax_loss
    run = None
    if quantized:
        accelerator = resolve_accelerator(hw, network)
        spec = with_model_quantization(load_qspec(qspec)[0], network)
        run = prepare(network, accelerator, spec, dataset, batch, run_options.seed)
    means = {"float": BatchMeans(), "quantized": BatchMeans()}
    done = 0
    for index, (x, y) in enumerate(dataset.iter_batches(batch, total)):
        means["float"].add(batch_figures(network.run_float(x)[prediction], y, ks, ties, loss))
        if run is not None:
            run.check_batch(x, index * batch, dataset.source)
            rng = np.random.default_rng([run_options.seed, 0, index])
            final = None
            for quant, _, outcome in run.propagate(x, rng):
                if quant.layer.outputs[0] == network.resolve(prediction):
                    final = outcome.out.values()
            means["quantized"].add(batch_figures(final, y, ks, ties, loss))
        done += len(x)
        if progress is not None:
            progress(done, total)
    classes = int(np.prod(network.shape(prediction)[1:2]))
    top5 = classes > 5
    return ScoreResult(
        samples=done, batches=means["float"].batches, tie_rule=ties, top_k=ks,
        top1_float=means["float"].mean("top1"), top1_quantized=means["quantized"].mean("top1"),
        top5_float=means["float"].mean("top5") if top5 else None,
        top5_quantized=means["quantized"].mean("top5") if top5 else None,
        loss_float=means["float"].mean("loss"), loss_quantized=means["quantized"].mean("loss"))
