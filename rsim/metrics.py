"""Streaming error statistics between a float reference and a simulated tensor, and end-to-end
classification scores, so memory does not grow with the number of samples.

Per tensor, `ErrorAccumulator.update(reference, simulated, clipped_mask)` is called batch by batch;
`result()` gives an `ErrorStats`. The first axis of a batch is the sample axis. A compiled pass
sums each sample's elements (in an order that depends only on the sample's size, vectorized),
then adds the per-sample sums to float64 running totals in sample order. The two steps are
also separate: `measure_batch` (the heavy pass, thread-safe) and `ErrorAccumulator.add` (the
ordered fold), so batches can be measured in parallel and folded in order. Feeding the samples in
any split into batches therefore performs the very same floating-point operations as feeding
them at once: the results are bitwise equal. Simulated tensors may come as integer codes with a
scale (values = codes·scale, decoded exactly inside the pass, as fixed point needs). Plain
float64 summation of n terms errs by at most about n·2^-53 relative on the sums of non-negative
terms (Σr², Σe², Σ|e|, Σs²), far below what a dB figure shows.

Definitions (r = reference, s = simulated, e = r - s, sums over all elements seen):

- SQNR (dB) = 10·log10(Σr² / Σe²); +inf when Σe² = 0 (no error, whatever the signal), -inf when
  Σr² = 0 < Σe² (pure noise).
- relative L2 = ‖e‖ / ‖r‖; 0 when both are zero, +inf when only ‖r‖ is.
- cosine similarity = Σr·s / (‖r‖·‖s‖), clipped to [-1, 1]; 1 when both norms are zero, 0 when
  exactly one is.
- clipped share = clipped elements / elements that came with a clipped mask.
- range used = max|s| / format_max, the headroom figure for choosing a fractional length.

A statistic that has no data behind it (no element seen, no mask given, no format max) is None.
Non-finite inputs (an overflow to inf or NaN in a minifloat datapath) propagate: the sums become
inf or NaN and so do the statistics built on them; max/min report them as well.

End to end: `AgreementAccumulator` (top-1 agreement of two logit arrays) and `AccuracyAccumulator`
(top-k accuracy against labels). A class ranks above the labelled one when its logit is larger,
or equal with a lower class index: the order of a stable descending sort, so top-1 is the first
argmax, as the agreement uses, and a model whose logits are all equal is not scored as right.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from formats.errors import RsimError

# The running sums: Σr², Σe², Σ|e|, Σr·s, Σs²; the running extremes: max|e|, min s, max s.
_REF_SQ, _ERR_SQ, _ERR_ABS, _DOT, _SIM_SQ = range(5)
_MAX_ERR, _SIM_MIN, _SIM_MAX = range(3)


def _nan_skipping(name: str):
    """LLVM's maxnum/minnum on float64: a NaN operand yields the other one (so running extremes
    skip NaNs), and unlike a compare-and-select the loop vectorizes."""

    @intrinsic
    def extreme(typingctx, a, b):
        def codegen(context, builder, signature, args):
            double = ir.DoubleType()
            fn = builder.module.declare_intrinsic(
                name, [double], ir.FunctionType(double, [double, double]))
            return builder.call(fn, args)

        return types.float64(types.float64, types.float64), codegen

    return extreme


_maxnum, _minnum = _nan_skipping("llvm.maxnum"), _nan_skipping("llvm.minnum")


@njit(cache=True, fastmath={"reassoc", "nsz", "contract"})
def _sample_sums(reference, simulated, scale):
    """The five sums over one sample's elements. Reassociation lets LLVM vectorize them; the
    order it picks depends only on the sample's size. NaN and inf still propagate."""
    ref_sq = err_sq = err_abs = dot = sim_sq = 0.0
    for i in range(reference.size):
        r = np.float64(reference[i])
        s = simulated[i] * scale
        e = r - s
        ref_sq += r * r
        err_sq += e * e
        err_abs += abs(e)
        dot += r * s
        sim_sq += s * s
    return ref_sq, err_sq, err_abs, dot, sim_sq


@njit(cache=True)
def _sample_extremes(reference, simulated, scale, max_err, low, high):
    """max|e|, min s and max s, updated over one sample (NaNs skipped)."""
    for i in range(reference.size):
        s = simulated[i] * scale
        max_err = _maxnum(max_err, abs(np.float64(reference[i]) - s))
        low = _minnum(low, s)
        high = _maxnum(high, s)
    return max_err, low, high


@njit(cache=True, nogil=True)
def _measure(reference, simulated, scale, per_sample, extremes) -> None:
    """Per-sample sums of (samples, elements) `reference` and `simulated` (values
    simulated·scale) into `per_sample` (samples, 5), and the extremes of the batch. NaNs are
    skipped by the extremes here; the sums carry them."""
    max_err, low, high = extremes[_MAX_ERR], extremes[_SIM_MIN], extremes[_SIM_MAX]
    for n in range(reference.shape[0]):
        per_sample[n, _REF_SQ], per_sample[n, _ERR_SQ], per_sample[n, _ERR_ABS], \
            per_sample[n, _DOT], per_sample[n, _SIM_SQ] = _sample_sums(reference[n],
                                                                       simulated[n], scale)
        max_err, low, high = _sample_extremes(reference[n], simulated[n], scale, max_err, low,
                                              high)
    extremes[_MAX_ERR], extremes[_SIM_MIN], extremes[_SIM_MAX] = max_err, low, high


@njit(cache=True, nogil=True)
def _fold(per_sample, sums) -> None:
    """Add the per-sample sums to the running sums, one sample after the other."""
    for n in range(per_sample.shape[0]):
        for row in range(per_sample.shape[1]):
            sums[row] += per_sample[n, row]


def _as_samples(array: Any, what: str, codes: bool = False) -> np.ndarray:
    """A contiguous (samples, elements) view of a batch: float32/float64 values, or integer
    codes when `codes` is set (other numeric values become float64)."""
    array = np.asarray(array)
    if codes:
        if array.dtype.kind not in "iu":
            raise RsimError(f"{what}: with a scale, expected integer codes, got dtype {array.dtype}")
    elif array.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise RsimError(f"{what}: expected a numeric array, got dtype {array.dtype}")
        array = array.astype(np.float64)
    samples = array.shape[0] if array.ndim else 1
    return np.ascontiguousarray(array).reshape(samples, array.size // samples)


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """Error statistics of one tensor over every sample seen (see the module docstring)."""

    count: int
    sqnr_db: float | None
    max_abs_error: float | None
    mean_abs_error: float | None
    rel_l2: float | None
    cosine: float | None
    clipped_share: float | None
    out_min: float | None
    out_max: float | None
    range_used: float | None

    def as_dict(self) -> dict[str, float]:
        """The defined statistics by name (None ones left out), as stored in traces."""
        return {
            field.name: float(value)
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }


METRIC_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(ErrorStats))


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """10·log10(signal/noise) with the edge cases of the module docstring."""
    if math.isnan(signal_energy) or math.isnan(noise_energy):
        return math.nan
    if noise_energy == 0.0:
        return math.inf
    ratio = signal_energy / noise_energy
    return -math.inf if ratio == 0.0 else 10.0 * math.log10(ratio)


class ErrorAccumulator:
    """Running error statistics of a simulated tensor against its float reference.

    `format_max` is the largest magnitude the simulated tensor's format can hold; with it, the
    result says which share of that range the outputs actually used.
    """

    def __init__(self, format_max: float | None = None) -> None:
        if format_max is not None and not (format_max > 0 and math.isfinite(format_max)):
            raise RsimError(f"format_max must be a positive finite number, got {format_max!r}")
        self.format_max = format_max
        self.count = 0
        self._sums = np.zeros(5)
        self._extremes = np.array([0.0, math.inf, -math.inf])
        self._masked = 0
        self._clipped = 0

    def update(self, reference: Any, simulated: Any, clipped_mask: Any = None, *,
               scale: float | None = None) -> None:
        """Add one batch: `add(measure_batch(...))` with the same arguments."""
        self.add(measure_batch(reference, simulated, clipped_mask, scale=scale))

    def add(self, batch: BatchErrors) -> None:
        """Fold in a batch measured by `measure_batch`. Batches must come in sample order for
        bitwise reproducible sums."""
        _fold(batch.per_sample, self._sums)
        self._extremes[_MAX_ERR] = _nan_skipping_max(self._extremes[_MAX_ERR], batch.max_err)
        self._extremes[_SIM_MIN] = -_nan_skipping_max(-self._extremes[_SIM_MIN], -batch.sim_min)
        self._extremes[_SIM_MAX] = _nan_skipping_max(self._extremes[_SIM_MAX], batch.sim_max)
        self.count += batch.count
        if batch.masked is not None:
            self._clipped += batch.clipped
            self._masked += batch.masked

    def _total(self, row: int) -> float:
        return float(self._sums[row])

    def result(self) -> ErrorStats:
        """The statistics of everything seen so far."""
        if self.count == 0:
            return ErrorStats(0, *([None] * (len(METRIC_NAMES) - 1)))
        ref_sq, err_sq = self._total(_REF_SQ), self._total(_ERR_SQ)
        dot, sim_sq = self._total(_DOT), self._total(_SIM_SQ)
        max_err, out_min, out_max = (float(v) for v in self._extremes)
        if math.isnan(err_sq):  # a NaN error was seen: the extremes skipped it
            max_err = math.nan
        if math.isnan(sim_sq):
            out_min = out_max = math.nan
        return ErrorStats(
            count=self.count,
            sqnr_db=sqnr_db(ref_sq, err_sq),
            max_abs_error=max_err,
            mean_abs_error=self._total(_ERR_ABS) / self.count,
            rel_l2=_ratio_of_norms(err_sq, ref_sq),
            cosine=_cosine(dot, ref_sq, sim_sq),
            clipped_share=self._clipped / self._masked if self._masked else None,
            out_min=out_min,
            out_max=out_max,
            range_used=(
                max(abs(out_min), abs(out_max)) / self.format_max
                if self.format_max is not None
                else None
            ),
        )


def _nan_skipping_max(a: float, b: float) -> float:
    return a if math.isnan(b) or a >= b else b


@dataclasses.dataclass(frozen=True)
class BatchErrors:
    """One batch's share of the error statistics (see `measure_batch`)."""

    count: int
    per_sample: np.ndarray  # (samples, 5): Σr², Σe², Σ|e|, Σr·s, Σs² of each sample
    max_err: float
    sim_min: float
    sim_max: float
    clipped: int = 0
    masked: int | None = None  # elements that came with a clipped mask (None: no mask)


def measure_batch(reference: Any, simulated: Any, clipped_mask: Any = None, *,
                  scale: float | None = None) -> BatchErrors:
    """Measure one batch (first axis: samples) for `ErrorAccumulator.add`: the heavy part, safe
    to run in several threads at once. `clipped_mask` (same shape, bool) marks outputs that
    saturated. With `scale`, `simulated` holds integer codes of values codes·scale (exact
    while |codes| < 2^53 and the values are normal floats)."""
    reference_shape, simulated_shape = np.shape(reference), np.shape(simulated)
    if reference_shape != simulated_shape:
        raise RsimError(
            f"reference shape {reference_shape} and simulated shape {simulated_shape} differ"
        )
    if clipped_mask is not None and np.shape(clipped_mask) != reference_shape:
        raise RsimError(
            f"clipped mask shape {np.shape(clipped_mask)} does not match the tensor "
            f"shape {reference_shape}"
        )
    count = math.prod(reference_shape)
    extremes = np.array([0.0, math.inf, -math.inf])
    if count:
        reference = _as_samples(reference, "reference")
        per_sample = np.empty((reference.shape[0], 5))
        _measure(reference, _as_samples(simulated, "simulated", codes=scale is not None),
                 1.0 if scale is None else float(scale), per_sample, extremes)
    else:
        per_sample = np.zeros((0, 5))
    if clipped_mask is None:
        return BatchErrors(count, per_sample, *extremes)
    return BatchErrors(count, per_sample, *extremes, clipped=int(np.count_nonzero(clipped_mask)),
                       masked=int(np.size(clipped_mask)))


def _ratio_of_norms(numerator_sq: float, denominator_sq: float) -> float:
    if numerator_sq == 0.0:
        return 0.0
    if denominator_sq == 0.0:
        return math.inf
    return math.sqrt(numerator_sq) / math.sqrt(denominator_sq)


def _cosine(dot: float, a_sq: float, b_sq: float) -> float:
    if a_sq == 0.0 and b_sq == 0.0:
        return 1.0
    if a_sq == 0.0 or b_sq == 0.0:
        return 0.0
    cosine = dot / (math.sqrt(a_sq) * math.sqrt(b_sq))
    return cosine if math.isnan(cosine) else max(-1.0, min(1.0, cosine))


def _as_logits(logits: Any, what: str) -> np.ndarray:
    """(N, classes) view of logits; trailing singleton axes such as (N, C, 1, 1) are flattened."""
    logits = np.asarray(logits)
    if logits.ndim < 2:
        raise RsimError(f"{what}: expected logits of shape (samples, classes), got {logits.shape}")
    return logits.reshape(logits.shape[0], math.prod(logits.shape[1:]))


TIE_RULES = {
    "first": "a tie goes to the lower class index (numpy argmax, a stable sort)",
    "last": "a tie goes to the higher class index (Caffe's Accuracy layer until 2017)",
    "pessimistic": "a tie with the label counts against it (Caffe's Accuracy layer since 2017)",
}


def label_ranks(logits: Any, labels: Any, ties: str = "first") -> np.ndarray:
    """Per sample, how many classes rank above the labelled one (0 = top-1): larger logits, and
    equal logits as the tie rule says (`TIE_RULES`)."""
    if ties not in TIE_RULES:
        raise RsimError(f"tie rule {ties!r} is not one of {', '.join(TIE_RULES)}")
    scores = _as_logits(logits, "logits")
    labels = np.asarray(labels)
    if labels.shape != (scores.shape[0],):
        raise RsimError(
            f"labels: expected shape ({scores.shape[0]},) to match the logits, got {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise RsimError(f"labels: expected integer class indices, got dtype {labels.dtype}")
    classes = scores.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise RsimError(
            f"labels: class indices must lie in 0..{classes - 1}, "
            f"got {labels.min()}..{labels.max()}"
        )
    labelled = np.take_along_axis(scores, labels.astype(np.intp)[:, None], axis=1)
    index, label = np.arange(classes)[None, :], labels[:, None]
    wins_tie = {"first": index < label, "last": index > label,
                "pessimistic": index != label}[ties]
    ranks = np.count_nonzero((scores > labelled) | ((scores == labelled) & wins_tie), axis=1)
    ranks[np.isnan(labelled[:, 0])] = classes  # a NaN score for the label is never a hit
    return ranks


class AccuracyAccumulator:
    """Streaming top-k accuracy of logits against integer labels, for every k in `ks`, ties
    ranked as `ties` says (`TIE_RULES`)."""

    def __init__(self, ks: Iterable[int] = (1, 5), ties: str = "first") -> None:
        self.ties = ties
        self.ks = tuple(sorted(set(ks)))
        if not self.ks or self.ks[0] < 1:
            raise RsimError(f"top-k accuracy needs k >= 1, got {ks!r}")
        self.count = 0
        self._hits = dict.fromkeys(self.ks, 0)

    def update(self, logits: Any, labels: Any) -> None:
        ranks = label_ranks(logits, labels, self.ties)
        for k in self.ks:
            self._hits[k] += int(np.count_nonzero(ranks < k))
        self.count += ranks.size

    def accuracy(self, k: int = 1) -> float | None:
        """Share of samples whose label is among the k highest logits; None before any sample."""
        if k not in self._hits:
            raise RsimError(f"top-{k} accuracy was not tracked; tracked k: {self.ks}")
        return self._hits[k] / self.count if self.count else None

    def as_dict(self) -> dict[str, float]:
        """{"top1": ..., "top5": ...} for the defined accuracies."""
        return {f"top{k}": self._hits[k] / self.count for k in self.ks} if self.count else {}


class AgreementAccumulator:
    """Streaming share of samples whose top-1 class (first argmax) is the same in both arrays."""

    def __init__(self) -> None:
        self.count = 0
        self._agreeing = 0

    def update(self, logits_a: Any, logits_b: Any) -> None:
        a, b = _as_logits(logits_a, "logits"), _as_logits(logits_b, "logits")
        if a.shape != b.shape:
            raise RsimError(f"logit shapes differ: {a.shape} and {b.shape}")
        self._agreeing += int(np.count_nonzero(a.argmax(axis=1) == b.argmax(axis=1)))
        self.count += a.shape[0]

    @property
    def agreement(self) -> float | None:
        """0..1, None before any sample."""
        return self._agreeing / self.count if self.count else None
