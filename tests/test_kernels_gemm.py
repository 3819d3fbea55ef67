"""kernels.gemm: bit-exact against the Python-int reference of the reduction plan, apytypes for
the wide exact result, and the accumulator/k_chunk behaviour the issue specifies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_kernels_reference import gemm_reference

import kernels
from formats import Register, parse
from formats.errors import RsimError
from plans import plan_of

OVERFLOWS = ("saturate", "wrap", "saturate_symmetric")


@st.composite
def gemm_cases(draw):
    m, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 40)), draw(st.integers(1, 5))
    a_bits, b_bits = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1), (m, k))
    b = rng.integers(-(2 ** (b_bits - 1)), 2 ** (b_bits - 1), (k, n))
    acc_bits = draw(st.integers(2, 32))
    k_chunk = draw(st.one_of(st.none(), st.integers(1, 20)))
    plan = {"acc_bits": acc_bits, "acc_overflow": draw(st.sampled_from(OVERFLOWS)), "k_chunk": k_chunk}
    if k_chunk is not None:
        plan["partial_sum_bits"] = draw(st.one_of(st.none(), st.integers(2, 32)))
        plan["partial_sum_overflow"] = draw(st.sampled_from(OVERFLOWS))
    bias = None
    if draw(st.booleans()):
        plan["bias_mode"] = draw(st.sampled_from(["preload", "post"]))
        reg_bits = acc_bits
        if plan["bias_mode"] == "post" and k_chunk is not None:
            reg_bits = plan["partial_sum_bits"] or acc_bits
        bias = rng.integers(-(2 ** (reg_bits - 1)) + 1, 2 ** (reg_bits - 1), n)
    return a, b, bias, plan


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gemm_cases())
def test_gemm_equals_the_python_int_reference_value_and_counters(case):
    a, b, bias, plan = case
    out, stats = kernels.gemm(a, b, plan_of(**plan), bias=bias)
    ref, acc_ev, partial_sum_ev = gemm_reference(a, b, bias, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)
    assert stats.acc_saturations == acc_ev.sum()
    assert stats.partial_sum_saturations == partial_sum_ev.sum()
    assert np.array_equal(stats.acc_saturations_per_channel, acc_ev.sum(axis=0))


@st.composite
def wide_cases(draw):
    """Codes up to 31 bits in narrow numpy dtypes, registers up to 64 bits: the int64 kernel and
    the K-blocked float64 BLAS path."""
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 30)), draw(st.integers(1, 4))
    a_bits, b_bits = draw(st.integers(8, 31)), draw(st.integers(8, 31))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1), (m, k))
    b = rng.integers(-(2 ** (b_bits - 1)), 2 ** (b_bits - 1), (k, n))
    a = a.astype(np.int32)  # b stays int64: mixed dtypes
    k_chunk = draw(st.one_of(st.none(), st.integers(1, 10)))
    plan = {"acc_bits": draw(st.integers(33, 64)), "k_chunk": k_chunk,
            "acc_overflow": draw(st.sampled_from(OVERFLOWS))}  # fmt: skip
    if k_chunk is not None:
        plan["partial_sum_bits"] = draw(st.integers(33, 64))
    return a, b, plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_cases())
def test_wide_codes_and_registers_equal_the_python_int_reference(case):
    a, b, plan = case
    out, stats = kernels.gemm(a, b, plan_of(**plan))
    ref, acc_ev, partial_sum_ev = gemm_reference(a, b, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)


def test_unsigned_and_narrow_dtypes_are_read_as_their_values():
    rng = np.random.default_rng(12)
    a = rng.integers(0, 256, (5, 40)).astype(np.uint8)
    b = rng.integers(-128, 128, (40, 3)).astype(np.int8)
    out, _ = kernels.gemm(a, b, plan_of(acc_bits=12))
    ref, _, _ = gemm_reference(a.astype(np.int64), b.astype(np.int64), acc_bits=12)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("acc_bits", [40, 63, 64])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_wide_registers_and_30_bit_codes_stay_exact(acc_bits, overflow):
    rng = np.random.default_rng(acc_bits)
    a = rng.integers(-(2**30), 2**30, (3, 70))
    b = rng.integers(-(2**30), 2**30, (70, 2))
    a[0] = 2**30 - 1  # a row whose sum runs far past 2^63 with b's column of maxima
    b[:, 0] = 2**30 - 1
    out, stats = kernels.gemm(a, b, plan_of(acc_bits=acc_bits, acc_overflow=overflow))
    ref, acc_ev, _ = gemm_reference(a, b, acc_bits=acc_bits, acc_overflow=overflow)
    assert np.array_equal(out, ref) and np.array_equal(stats.acc_events, acc_ev)
    assert acc_ev[0, 0] > 0


def test_wide_exact_result_matches_apytypes_fixed_point_matmul():
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(7)
    a = rng.integers(-(2**15), 2**15, (24, 300))
    b = rng.integers(-(2**15), 2**15, (300, 16))
    out, stats = kernels.gemm(a, b, plan_of(acc_bits=48))
    exact = apy.APyFixedArray.from_float(a, int_bits=16, frac_bits=0) @ apy.APyFixedArray.from_float(
        b, int_bits=16, frac_bits=0
    )
    assert np.array_equal(out, exact.to_numpy().astype(np.int64))
    assert stats.acc_saturations == 0


@pytest.mark.parametrize("k", [1023, 1024, 1025, 2049])
def test_blas_fast_path_is_exact_at_the_float32_partial_sum_limit(k):
    # every product is +2^14, so sums reach 2^24 exactly at K = 1024: the float32 single GEMM
    # must be avoided (or blocked) beyond it
    a = np.full((3, k), -128, np.int8)
    b = np.full((k, 2), -128, np.int8)
    a[1, ::3] = 127
    out, stats = kernels.gemm(a, b, plan_of(acc_bits=64))
    assert np.array_equal(out, a.astype(np.int64) @ b.astype(np.int64))
    assert stats.outputs_at_risk == 0


def _saturating_case():
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (16, 96))
    b = rng.integers(-128, 128, (96, 8))
    a[3, :48] = 127  # a row that drives column 5 far positive early in K
    b[:48, 5] = 127
    return a, b


def test_12_and_16_bit_saturating_accumulators_differ_and_each_is_exact():
    a, b = _saturating_case()
    out12, st12 = kernels.gemm(a, b, plan_of(acc_bits=12))
    out16, st16 = kernels.gemm(a, b, plan_of(acc_bits=16))
    ref12, ev12, _ = gemm_reference(a, b, acc_bits=12)
    ref16, ev16, _ = gemm_reference(a, b, acc_bits=16)
    assert np.array_equal(out12, ref12) and np.array_equal(out16, ref16)
    assert not np.array_equal(out12, out16)
    assert np.array_equal(st12.acc_events, ev12) and np.array_equal(st16.acc_events, ev16)
    # the counters locate saturation: the forced output saturates in both widths
    assert st16.acc_events[3, 5] > 0 and st12.acc_events[3, 5] >= st16.acc_events[3, 5]
    exact = a @ b
    assert np.array_equal(out16[st16.acc_events == 0], exact[st16.acc_events == 0])


def test_k_chunk_16_and_none_differ_exactly_where_the_reference_says():
    a, b = _saturating_case()
    plan16 = {"acc_bits": 14, "k_chunk": 16, "partial_sum_bits": 20}
    out_chunked, _ = kernels.gemm(a, b, plan_of(**plan16))
    out_whole, _ = kernels.gemm(a, b, plan_of(acc_bits=14))
    ref_chunked, _, _ = gemm_reference(a, b, **plan16)
    ref_whole, _, _ = gemm_reference(a, b, acc_bits=14)
    assert np.array_equal(out_chunked, ref_chunked) and np.array_equal(out_whole, ref_whole)
    assert np.array_equal(out_chunked != out_whole, ref_chunked != ref_whole)
    assert (out_chunked != out_whole).any()


@pytest.mark.parametrize(
    "plan",
    [{"acc_bits": 16},
     {"acc_bits": 15, "k_chunk": 100, "partial_sum_bits": 17, "bias_mode": "preload"},
     {"acc_bits": 16, "acc_overflow": "wrap", "k_chunk": 64, "partial_sum_bits": 16,
      "partial_sum_overflow": "wrap"}],
)  # fmt: skip
def test_sparse_risk_runs_only_the_outputs_at_risk_sequentially(plan):
    # a hot row runs along its columns, a hot column along its rows (the transposed pass)
    rng = np.random.default_rng(5)
    a = rng.integers(-8, 8, (64, 300))
    b = rng.integers(-8, 8, (300, 32))
    a[7] = 127
    b[:, 3] = 127
    bias = rng.integers(-1000, 1000, 32)
    out, stats = kernels.gemm(a, b, plan_of(**plan), bias=bias)
    ref, acc_ev, partial_sum_ev = gemm_reference(a, b, bias, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)
    assert 0 < stats.outputs_at_risk < 64 * 32 // 10


def test_bias_preload_and_post_use_the_registers_the_plan_names():
    a = np.array([[100, 100, -100]])
    b = np.array([[1], [1], [1]])
    pre, st_pre = kernels.gemm(a, b, plan_of(acc_bits=8, bias_mode="preload"), bias=np.array([101]))
    post, st_post = kernels.gemm(a, b, plan_of(acc_bits=8, bias_mode="post"), bias=np.array([101]))
    assert pre[0, 0] == 27 and st_pre.acc_saturations == 2  # 101+100 -> 127, +100 -> 127, -100
    assert post[0, 0] == 127 and st_post.acc_saturations == 2  # 127, 27, then 27 + 101 -> 127
    chunked, st_chunk = kernels.gemm(a, b, plan_of(acc_bits=8, k_chunk=2, partial_sum_bits=10),
                                     bias=np.array([300]))
    assert chunked[0, 0] == 127 - 100 + 300 and st_chunk.acc_saturations == 1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"k_chunk": 0}, "k_chunk"),
        ({"k_chunk": -3}, "k_chunk"),
        ({"k_chunk": 2.5}, "k_chunk"),
        ({"bias_mode": "pre"}, "bias_mode"),
        ({"partial_sum": Register.floating(parse("fp16")), "k_chunk": 4}, "accumulator, partial_sum"),
        ({"product": parse("fp16")}, "product"),
    ],
)
def test_a_bad_reduction_plan_is_one_error_naming_the_field(kwargs, name):
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        kernels.ReductionPlan(Register.integer(16), **kwargs)


@pytest.mark.parametrize("bits", [1, 65])
def test_a_register_wider_than_64_or_narrower_than_2_bits_is_refused(bits):
    with pytest.raises(ValidationError, match="bits"):
        Register.integer(bits)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"plan": plan_of(acc_bits=8), "bias": np.array([200, 0])}, "bias"),
        ({"bias": np.array([1, 2, 3])}, "bias"),
        ({"a_bits": 4}, "a"),
        ({"b_bits": 3}, "b"),
        ({"plan": {"acc_bits": 16}}, "gemm: plan"),
    ],
)
def test_bad_arguments_raise_rsim_error_naming_the_argument(kwargs, name):
    a = np.array([[9, -3], [1, 2]])
    b = np.array([[1, 5], [-4, 2]])
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        kernels.gemm(a, b, **({"plan": plan_of(acc_bits=16)} | kwargs))


def test_mismatched_shapes_and_float_inputs_raise_rsim_error():
    with pytest.raises(RsimError, match=r"^b\b"):
        kernels.gemm(np.ones((2, 3), int), np.ones((4, 2), int), plan_of(acc_bits=16))
    with pytest.raises(RsimError, match=r"^a\b"):
        kernels.gemm(np.ones((2, 3)), np.ones((3, 2), int), plan_of(acc_bits=16))
