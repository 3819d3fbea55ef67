"""rsim.metrics: streaming error statistics and end-to-end scores, against exact references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from formats.errors import RsimError
from rsim.metrics import (
    METRIC_NAMES,
    AccuracyAccumulator,
    AgreementAccumulator,
    ErrorAccumulator,
    ErrorStats,
    label_ranks,
)

# Magnitudes from 1e-100 up, so no square underflows in float64 and rational sums stay exact refs.
magnitudes = st.floats(1e-100, 1e6)
finite = st.one_of(st.just(0.0), magnitudes, magnitudes.map(lambda v: -v))
small = st.one_of(st.just(0.0), st.floats(1e-100, 1.0), st.floats(-1.0, -1e-100))


@st.composite
def paired_batches(draw):
    """A reference/simulated pair of (samples, elements), a clip mask, and cut points that split
    them into batches of samples."""
    n, width = draw(st.integers(1, 30)), draw(st.integers(1, 9))
    shape = (n, width)
    reference = draw(hnp.arrays(np.float64, shape, elements=finite))
    noise = draw(hnp.arrays(np.float64, shape, elements=small))
    simulated = np.where(draw(hnp.arrays(np.bool_, shape)), reference, reference + noise)
    mask = draw(hnp.arrays(np.bool_, shape))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    return reference, simulated, mask, cuts


def _stats(batches, format_max=None) -> ErrorStats:
    accumulator = ErrorAccumulator(format_max)
    for reference, simulated, mask in batches:
        accumulator.update(reference, simulated, mask)
    return accumulator.result()


def _split(arrays, cuts):
    bounds = [0, *cuts, len(arrays[0])]
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds, bounds[1:])]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(paired_batches())
def test_any_split_into_batches_gives_bitwise_the_statistics_of_the_concatenation(case):
    reference, simulated, mask, cuts = case
    whole = _stats([(reference, simulated, mask)], format_max=8.0)
    assert _stats(_split((reference, simulated, mask), cuts), format_max=8.0) == whole


def _exact_reference(reference, simulated):
    """SQNR, relative L2, cosine and mean |e| from exact rational sums of the same values."""
    r = [Fraction(float(v)) for v in reference.ravel()]
    s = [Fraction(float(v)) for v in simulated.ravel()]
    e = [a - b for a, b in zip(r, s)]
    ref_sq, err_sq = sum(a * a for a in r), sum(d * d for d in e)
    dot, sim_sq = sum(a * b for a, b in zip(r, s)), sum(b * b for b in s)
    return {
        "sqnr_db": (
            (10 * math.log10(ref_sq / err_sq) if ref_sq else -math.inf) if err_sq else math.inf
        ),
        "rel_l2": math.sqrt(err_sq / ref_sq) if ref_sq else (0.0 if not err_sq else math.inf),
        "cosine": (
            math.copysign(math.sqrt(dot * dot / (ref_sq * sim_sq)), dot)
            if ref_sq and sim_sq
            else None
        ),
        "mean_abs_error": float(sum(abs(d) for d in e) / len(e)),
        "max_abs_error": float(max(abs(d) for d in e)),
    }


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(paired_batches())
def test_statistics_match_exact_rational_sums(case):
    reference, simulated, mask, cuts = case
    stats = _stats(_split((reference, simulated, mask), cuts))
    expected = _exact_reference(reference, simulated)
    assert stats.count == reference.size
    assert stats.max_abs_error == pytest.approx(expected["max_abs_error"], rel=1e-15)
    assert stats.mean_abs_error == pytest.approx(expected["mean_abs_error"], rel=1e-12, abs=1e-300)
    assert stats.rel_l2 == pytest.approx(expected["rel_l2"], rel=1e-9)
    if math.isfinite(expected["sqnr_db"]):
        assert stats.sqnr_db == pytest.approx(expected["sqnr_db"], abs=1e-9)
    else:
        assert stats.sqnr_db == expected["sqnr_db"]
    if expected["cosine"] is not None:
        assert stats.cosine == pytest.approx(min(1.0, max(-1.0, expected["cosine"])), abs=1e-12)
    assert stats.clipped_share == np.count_nonzero(mask) / mask.size
    assert (stats.out_min, stats.out_max) == (simulated.min(), simulated.max())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(-30, 30), st.integers(0, 2**32 - 1))
def test_codes_with_a_scale_give_bitwise_the_statistics_of_their_decoded_values(
        samples, width, fl, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(2**40), 2**40, (samples, width))
    reference = (codes * 2.0**-fl + rng.normal(0, 2.0**-fl, codes.shape)).astype(np.float32)
    decoded = _stats([(reference, codes * 2.0**-fl, None)])
    accumulator = ErrorAccumulator()
    accumulator.update(reference, codes, scale=2.0**-fl)
    assert accumulator.result() == decoded


def test_a_scale_needs_integer_codes():
    with pytest.raises(RsimError, match="integer codes"):
        ErrorAccumulator().update(np.zeros(3), np.zeros(3), scale=0.5)


def test_sqnr_of_a_known_noise_level():
    """A signal of power 1 with added noise of power 0.01 is at 20 dB."""
    reference = np.array([1.0, -1.0] * 50)
    simulated = reference + np.array([0.1, 0.1, -0.1, -0.1] * 25)
    stats = _stats([(reference, simulated, None)])
    assert stats.sqnr_db == pytest.approx(20.0, abs=1e-12)
    assert stats.rel_l2 == pytest.approx(0.1, rel=1e-14)


def test_float32_inputs_are_widened_exactly_before_summing():
    rng = np.random.default_rng(7)
    reference = rng.standard_normal((4, 33)).astype(np.float32)
    simulated = (reference + rng.standard_normal((4, 33)) * 1e-3).astype(np.float32)
    as32 = _stats([(reference, simulated, None)])
    as64 = _stats([(reference.astype(np.float64), simulated.astype(np.float64), None)])
    assert as32 == as64


def test_zero_error_gives_infinite_sqnr_zero_relative_error_and_unit_cosine():
    reference = np.array([[0.5, -2.0], [3.0, 0.0]])
    stats = _stats([(reference, reference.copy(), None)])
    assert (stats.sqnr_db, stats.rel_l2, stats.cosine) == (math.inf, 0.0, 1.0)
    assert (stats.max_abs_error, stats.mean_abs_error) == (0.0, 0.0)


def test_all_zero_reference_and_output_count_as_exact():
    zeros = np.zeros(5)
    stats = _stats([(zeros, zeros, None)])
    assert (stats.sqnr_db, stats.rel_l2, stats.cosine) == (math.inf, 0.0, 1.0)


def test_error_on_a_zero_reference_is_pure_noise():
    stats = _stats([(np.zeros(3), np.array([0.0, 0.25, 0.0]), None)])
    assert (stats.sqnr_db, stats.rel_l2, stats.cosine) == (-math.inf, math.inf, 0.0)


def test_no_data_leaves_every_statistic_undefined():
    stats = ErrorAccumulator().result()
    assert stats.count == 0
    assert all(getattr(stats, name) is None for name in METRIC_NAMES if name != "count")
    assert stats.as_dict() == {"count": 0.0}


def test_clipped_share_counts_only_batches_that_came_with_a_mask():
    accumulator = ErrorAccumulator()
    accumulator.update(np.ones(4), np.ones(4), np.array([True, False, False, False]))
    accumulator.update(np.ones(6), np.ones(6))
    assert accumulator.result().clipped_share == 0.25
    assert ErrorAccumulator().result().clipped_share is None


def test_range_used_is_the_largest_output_magnitude_over_the_format_max():
    reference = np.array([1.0, -3.0, 2.0])
    stats = _stats([(reference, np.array([1.0, -3.5, 2.0]), None)], format_max=7.0)
    assert (stats.out_min, stats.out_max, stats.range_used) == (-3.5, 2.0, 0.5)
    assert _stats([(reference, reference, None)]).range_used is None


def test_as_dict_holds_exactly_the_defined_statistics():
    stats = _stats([(np.array([1.0, 2.0]), np.array([1.0, 2.5]), None)])
    assert set(stats.as_dict()) == set(METRIC_NAMES) - {"clipped_share", "range_used"}


def test_overflow_to_infinity_in_the_simulation_shows_as_minus_infinite_sqnr():
    stats = _stats([(np.array([1.0, 2.0]), np.array([1.0, np.inf]), None)])
    assert (stats.sqnr_db, stats.max_abs_error, stats.out_max) == (-math.inf, math.inf, math.inf)


def test_nan_in_the_simulation_is_never_hidden_by_max_or_min():
    stats = _stats([(np.array([1.0, 2.0, 3.0]), np.array([1.0, np.nan, 3.0]), None)])
    assert math.isnan(stats.sqnr_db) and math.isnan(stats.max_abs_error)
    assert math.isnan(stats.out_min) and math.isnan(stats.out_max) and math.isnan(stats.cosine)


@pytest.mark.parametrize(
    ("reference", "simulated", "mask"),
    [
        (np.zeros(3), np.zeros(4), None),
        (np.zeros(3), np.zeros(3), np.zeros(2, dtype=bool)),
        (np.array(["a"]), np.array(["a"]), None),
    ],
)
def test_mismatched_or_non_numeric_inputs_are_rejected(reference, simulated, mask):
    with pytest.raises(RsimError):
        ErrorAccumulator().update(reference, simulated, mask)


@pytest.mark.parametrize("format_max", [0.0, -1.0, math.inf, math.nan])
def test_format_max_must_be_positive_and_finite(format_max):
    with pytest.raises(RsimError, match="format_max"):
        ErrorAccumulator(format_max)


def _rank_by_definition(row, label):
    return sum(1 for index, value in enumerate(row)
               if value > row[label] or (value == row[label] and index < label))


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 12)),
               elements=st.sampled_from([-1.0, 0.0, 0.5, 2.0, 3.0])),
    st.data(),
)
def test_top_k_accuracy_breaks_ties_by_class_order_like_a_stable_sort(logits, data):
    classes = logits.shape[1]
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=len(logits),
                                         max_size=len(logits))))
    cut = data.draw(st.integers(0, len(logits)))
    accumulator = AccuracyAccumulator(ks=(1, 3, 5))
    accumulator.update(logits[:cut], labels[:cut])
    accumulator.update(logits[cut:], labels[cut:])
    ranks = [_rank_by_definition(row, label) for row, label in zip(logits.tolist(), labels)]
    for k in (1, 3, 5):
        assert accumulator.accuracy(k) == sum(rank < k for rank in ranks) / len(ranks)


def test_top_k_without_ties_equals_membership_in_the_k_largest():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((200, 10))
    labels = rng.integers(0, 10, 200)
    accumulator = AccuracyAccumulator()
    accumulator.update(logits, labels)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert accumulator.accuracy(5) == np.mean([label in row for label, row in zip(labels, top5)])
    assert accumulator.accuracy(1) == np.mean(logits.argmax(axis=1) == labels)
    assert accumulator.as_dict() == {
        "top1": accumulator.accuracy(1), "top5": accumulator.accuracy(5)}


def test_logits_that_are_all_equal_score_only_class_zero():
    accumulator = AccuracyAccumulator(ks=(1,))
    accumulator.update(np.zeros((4, 10)), np.array([0, 3, 3, 9]))
    assert accumulator.accuracy(1) == 0.25


def test_a_nan_score_for_the_label_is_a_miss():
    assert label_ranks(np.array([[np.nan, 1.0]]), np.array([0]))[0] == 2


def test_logits_with_trailing_singleton_axes_are_accepted():
    accumulator = AccuracyAccumulator(ks=(1,))
    accumulator.update(np.eye(4).reshape(4, 4, 1, 1), np.arange(4))
    assert accumulator.accuracy(1) == 1.0


def test_agreement_streams_over_batches_and_compares_first_argmax():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, (50, 4)).astype(float)
    b = rng.integers(0, 3, (50, 4)).astype(float)
    agreement = AgreementAccumulator()
    assert agreement.agreement is None
    for lo in range(0, 50, 16):
        agreement.update(a[lo : lo + 16], b[lo : lo + 16])
    first_a = [row.index(max(row)) for row in a.tolist()]
    first_b = [row.index(max(row)) for row in b.tolist()]
    assert agreement.count == 50
    assert agreement.agreement == sum(x == y for x, y in zip(first_a, first_b, strict=True)) / 50


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1]), "shape"),
        (np.array([0, 1, 4]), "0..3"),
        (np.array([0, -1, 2]), "0..3"),
        (np.array([0.0, 1.0, 2.0]), "integer"),
    ],
)
def test_bad_labels_are_rejected_naming_what_is_valid(labels, message):
    with pytest.raises(RsimError, match=message):
        AccuracyAccumulator().update(np.zeros((3, 4)), labels)


def test_untracked_k_and_bad_k_are_rejected():
    with pytest.raises(RsimError, match="top-2"):
        AccuracyAccumulator(ks=(1,)).accuracy(2)
    with pytest.raises(RsimError):
        AccuracyAccumulator(ks=(0,))
    with pytest.raises(RsimError, match="shapes differ"):
        AgreementAccumulator().update(np.zeros((2, 3)), np.zeros((2, 4)))
