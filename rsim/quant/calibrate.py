"""Calibration of dynamic fixed point: the float ranges of tensors on calibration data, and the
fractional length each rule picks from them (rules documented in `rsim.quant.qspec.Calibration`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from formats import FixedPoint
from formats.dfp import choose_fl
from rsim.quant.qspec import Calibration

SAMPLE_CAP = 65536  # values kept per tensor for the percentile and mse rules
MSE_CANDIDATES = 4  # the mse rule tries fl = fl_max .. fl_max + 3 (finer grids that clip more)


class TensorRange:
    """max|x| of one tensor over the calibration batches, and a bounded random sample of |x|."""

    def __init__(self, keep_sample: bool) -> None:
        self.max_abs = 0.0
        self._keep = keep_sample
        self._parts: list[np.ndarray] = []
        self._kept = 0

    def update(self, x: np.ndarray, rng: np.random.Generator) -> None:
        magnitudes = np.abs(np.asarray(x, dtype=np.float64)).ravel()
        if magnitudes.size:
            self.max_abs = max(self.max_abs, float(magnitudes.max()))
        if self._keep and self._kept < SAMPLE_CAP and magnitudes.size:
            take = min(SAMPLE_CAP - self._kept, magnitudes.size)
            self._parts.append(rng.choice(magnitudes, take, replace=False))
            self._kept += take

    @property
    def sample(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.zeros(1)


def collect_ranges(batches: Iterable[dict[str, np.ndarray]], tensors: Iterable[str],
                   calibration: Calibration, seed: int = 0) -> dict[str, TensorRange]:
    """Ranges of `tensors` over batches of float tensors (dicts by tensor name)."""
    keep = calibration.rule in ("percentile", "mse")
    ranges = {name: TensorRange(keep) for name in tensors}
    rng = np.random.default_rng(seed)
    for batch in batches:
        for name, stats in ranges.items():
            stats.update(batch[name], rng)
    return ranges


def activation_fl(stats: TensorRange, bits: int, calibration: Calibration) -> int:
    """Fractional length of an activation tensor under the calibration rule."""
    if calibration.rule == "ristretto":
        return choose_fl(stats.max_abs, bits, "activations")
    if calibration.rule == "percentile":
        return choose_fl(float(np.percentile(stats.sample, calibration.percentile)), bits,
                         "weights")
    fl_max = choose_fl(stats.max_abs, bits, "weights")
    if calibration.rule == "max":
        return fl_max
    sample = stats.sample

    def squared_error(fl: int) -> float:
        return float(np.sum((FixedPoint(bits, fl).quantize(sample) - sample) ** 2))

    return min(range(fl_max, fl_max + MSE_CANDIDATES), key=lambda fl: (squared_error(fl), fl))
