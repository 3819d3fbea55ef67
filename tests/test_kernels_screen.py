"""The block screening and the chunk-wise sequential kernel (kernels.screen, kernels.accumulate)
against the Python-int reference of the reduction plan: with the screening blocks forced short,
outputs proven safe for some blocks continue sequentially from their exact running sum; every
register rule, both bias modes, k_chunk None / 1 / odd / >= K, widths 2..64; and the integer
backends (float32 BLAS, torch int8) give the same results bit for bit."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kernels_conv import conv_cases
from test_kernels_reference import conv2d_reference, gemm_reference

import kernels
from formats.errors import RsimError
from kernels.intmm import int_backend, set_int_backend
from plans import plan_of

OVERFLOWS = ("saturate", "wrap", "saturate_symmetric")
gemm_module = sys.modules["kernels.gemm"]


@contextmanager
def screen_block(products: int):
    """Screening blocks of about `products` products (rounded to whole chunks), and every
    candidate screened (whether screening pays is a speed decision, bypassed here)."""
    before = gemm_module._SCREEN_BLOCK, gemm_module._SCREEN_MIN_SAVING
    gemm_module._SCREEN_BLOCK, gemm_module._SCREEN_MIN_SAVING = products, -1.0
    try:
        yield
    finally:
        gemm_module._SCREEN_BLOCK, gemm_module._SCREEN_MIN_SAVING = before


@contextmanager
def int_backend_forced(name: str):
    set_int_backend(name)
    try:
        yield
    finally:
        set_int_backend(None)


def _plan(draw, reg_bits, k_max):
    acc_bits = draw(reg_bits)
    k_chunk = draw(st.one_of(st.none(), st.just(1), st.integers(2, k_max + 3)))
    plan = {"acc_bits": acc_bits, "acc_overflow": draw(st.sampled_from(OVERFLOWS)),
            "k_chunk": k_chunk}  # fmt: skip
    if k_chunk is not None:
        plan["partial_sum_bits"] = draw(st.one_of(st.none(), reg_bits))
        plan["partial_sum_overflow"] = draw(st.sampled_from(OVERFLOWS))
    return plan


def _bias(draw, rng, plan, n):
    if not draw(st.booleans()):
        return None
    plan["bias_mode"] = draw(st.sampled_from(["preload", "post"]))
    bits = plan["acc_bits"]
    if plan["bias_mode"] == "post" and plan["k_chunk"] is not None:
        bits = plan["partial_sum_bits"] or bits
    return rng.integers(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1), n)


@st.composite
def drifting_cases(draw, reg_bits=st.integers(2, 32), code_bits=8):
    """Rows whose running sums drift: a sign per row segment, so sums climb, saturate and come
    back, in both directions, at different points of K."""
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 70)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = 2 ** (code_bits - 1)
    a = rng.integers(-top, top, (m, k))
    if draw(st.booleans()):  # long runs of one sign: climbs and recoveries
        runs = np.repeat(rng.choice([-1, 1], -(-k // 8)), 8)[:k]
        a = np.abs(a) * runs
    b = rng.integers(-top, top, (k, n))
    if draw(st.booleans()):
        b = np.abs(b)
    plan = _plan(draw, reg_bits, k)
    bias = _bias(draw, rng, plan, n)
    return a, b, bias, plan, draw(st.sampled_from([1, 2, 3, 5, 8, 192]))


def _check(a, b, bias, plan, block):
    with screen_block(block):
        out, stats = kernels.gemm(a, b, plan_of(**plan), bias=bias)
    ref, acc_ev, partial_sum_ev = gemm_reference(a, b, bias, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)
    assert stats.acc_saturations == acc_ev.sum()
    assert stats.partial_sum_saturations == partial_sum_ev.sum()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drifting_cases())
def test_screened_gemm_equals_the_reference_for_registers_of_2_to_32_bits(case):
    _check(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drifting_cases(reg_bits=st.integers(33, 64), code_bits=24))
def test_screened_gemm_equals_the_reference_for_registers_of_33_to_64_bits(case):
    _check(*case)


def _recovering_case():
    """Output 0 climbs past 2^11 in its first half and falls back a third of the way in its
    second; output 1 the mirror image; output 2 stays small: a 12-bit register saturates and
    recovers (to a value that depends on the rule), or wraps."""
    k = 64
    a = np.ones((1, k), np.int64) * 100
    b = np.zeros((k, 3), np.int64)
    b[: k // 2, 0], b[k // 2 :, 0] = 3, -1
    b[:, 1] = -b[:, 0]
    b[::2, 2], b[1::2, 2] = 1, -1
    return a, b


@pytest.mark.parametrize("k_chunk", [None, 1, 7, 16, 64, 100])
@pytest.mark.parametrize("block", [1, 16, 192])
def test_saturate_and_wrap_differ_after_a_register_recovers_and_each_is_exact(k_chunk, block):
    a, b = _recovering_case()
    results = {}
    for overflow in OVERFLOWS:
        plan = {"acc_bits": 12, "acc_overflow": overflow, "k_chunk": k_chunk}
        if k_chunk is not None:
            plan |= {"partial_sum_bits": 12, "partial_sum_overflow": overflow}
        _check(a, b, None, plan, block)
        results[overflow] = kernels.gemm(a, b, plan_of(**plan))[0]
    assert results["saturate"][0, 0] != results["wrap"][0, 0]
    assert results["saturate"][0, 1] != results["wrap"][0, 1]
    assert results["saturate"][0, 1] != results["saturate_symmetric"][0, 1]  # from -2048 vs -2047
    assert results["saturate"][0, 2] == results["wrap"][0, 2] == 0


def test_an_output_safe_until_its_last_block_starts_there_from_its_exact_running_sum():
    # 16-bit partial sum, k_chunk 4, blocks of 8: small products for 56 taps, then a burst
    rng = np.random.default_rng(4)
    a = rng.integers(-3, 4, (8, 64))
    b = rng.integers(-3, 4, (64, 8))
    a[:, 56:] = 127
    b[56:, 2] = 127
    plan = {"acc_bits": 18, "k_chunk": 4, "partial_sum_bits": 16}
    bias = rng.integers(-100, 100, 8)
    for mode in ("preload", "post"):
        _check(a, b, bias, plan | {"bias_mode": mode}, 8)
    out, stats = kernels.gemm(a, b, plan_of(**plan), bias=bias)
    assert stats.partial_sum_events[:, 2].all() and not stats.partial_sum_events[:, 3].any()


@st.composite
def int8_cases(draw):
    m, k, n = draw(st.integers(1, 8)), draw(st.integers(1, 300)), draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    if draw(st.booleans()):
        a = np.maximum(a, 0)  # activations after ReLU: one GEMM gives sums and bounds
    plan = _plan(draw, st.integers(12, 32), k)
    bias = _bias(draw, rng, plan, n)
    return a, b, bias, plan, draw(st.sampled_from([16, 64, 192]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(int8_cases())
def test_numpy_and_torch_backends_give_the_reference_bit_for_bit(case):
    pytest.importorskip("torch")
    a, b, bias, plan, block = case
    results = []
    for backend in ("numpy", "torch"):
        with int_backend_forced(backend):
            assert int_backend() == backend
            _check(a, b, bias, plan, block)
            with screen_block(block):
                results.append(kernels.gemm(a, b, plan_of(**plan), bias=bias))
    (out_n, st_n), (out_t, st_t) = results
    assert np.array_equal(out_n, out_t) and np.array_equal(st_n.acc_events, st_t.acc_events)


@pytest.mark.parametrize("k", [1023, 1024, 1025, 8000])
def test_the_int8_fast_path_is_exact_on_both_backends_up_to_the_int32_limit(k):
    # products of -128·-128 = 2^14: float32 is exact to K = 1024, int32 to K < 2^17
    a = np.full((17, k), -128, np.int8)
    b = np.full((k, 8), -128, np.int8)
    a[1, ::3] = 127
    want = a.astype(np.int64) @ b.astype(np.int64)
    backends = ["numpy"] + (["torch"] if _has_torch() else [])
    for backend in backends:
        with int_backend_forced(backend):
            out, stats = kernels.gemm(a, b, plan_of(acc_bits=32))
        assert np.array_equal(out, want) and stats.outputs_at_risk == 0


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_an_unknown_or_unavailable_backend_is_one_error_naming_the_setting(monkeypatch):
    with pytest.raises(RsimError, match=r"^set_int_backend: must be one of auto, numpy, torch"):
        set_int_backend("cuda")
    monkeypatch.setenv("RSIM_INT_BACKEND", "blas")
    with pytest.raises(RsimError, match=r"^RSIM_INT_BACKEND: must be one of"):
        kernels.gemm(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), plan_of(acc_bits=8))
    monkeypatch.setenv("RSIM_INT_BACKEND", "numpy")
    assert int_backend() == "numpy"


def _realistic_conv(rng, batch, channels, size):
    """int8 codes as a quantized network has them: ReLU'd normal activations, normal weights."""
    x = np.round(np.maximum(rng.normal(size=(batch, channels, size, size)), 0) * 16)
    w = np.round(rng.normal(size=(channels, channels, 3, 3)) * 25)
    return x.clip(-128, 127).astype(np.int8), w.clip(-128, 127).astype(np.int8)


@pytest.mark.parametrize(
    "plan",
    [{"acc_bits": 24, "k_chunk": 16, "partial_sum_bits": 16, "bias_mode": "preload"},
     {"acc_bits": 16, "k_chunk": 16, "partial_sum_bits": 16},
     {"acc_bits": 14, "acc_overflow": "wrap", "k_chunk": 5, "partial_sum_bits": 14,
      "partial_sum_overflow": "wrap"},
     {"acc_bits": 15, "acc_overflow": "saturate_symmetric"}],
)  # fmt: skip
def test_narrow_register_convs_on_realistic_codes_equal_the_direct_reference(plan):
    rng = np.random.default_rng(9)
    x, w = _realistic_conv(rng, 1, 12, 6)
    x[0, 0, :3] = 127  # a hot corner that saturates
    bias = rng.integers(-3000, 3000, 12)
    with screen_block(36):
        out, stats = kernels.conv2d(x, w, plan_of(**plan), padding=1, bias=bias)
    ref, acc_ev, partial_sum_ev = conv2d_reference(x, w, pads=(1, 1, 1, 1), bias=bias, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases(), st.sampled_from([1, 2, 5, 9]))
def test_screened_convs_restart_at_the_first_unsafe_block_and_equal_the_direct_reference(case,
                                                                                         block):
    """Float32 patches, short blocks, any geometry with one group: outputs that fail the screen
    continue from their exact running sums, on patches gathered for their pixels."""
    x, w, geo, plan, bias = case
    geo = geo | {"groups": 1, "k_order": "chw"}
    x = x[:, : w.shape[1]]  # one group: all of w's input channels
    with screen_block(block):
        out, stats = kernels.conv2d(x, w, plan_of(**plan), stride=geo["stride"],
                                    padding=geo["pads"], dilation=geo["dilation"],
                                    pad_value=geo["pad_value"], bias=bias)  # fmt: skip
    ref, acc_ev, partial_sum_ev = conv2d_reference(x, w, bias=bias, **geo, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)


def test_the_sequential_kernel_gives_the_same_results_on_one_and_two_threads():
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (64, 200))
    b = rng.integers(-128, 128, (200, 48))
    plan = plan_of(acc_bits=16, k_chunk=16, partial_sum_bits=16, acc_overflow="wrap")
    available = numba.get_num_threads()
    results = []
    for threads in (1, available):
        numba.set_num_threads(threads)
        try:
            results.append(kernels.gemm(a, b, plan))
        finally:
            numba.set_num_threads(available)
    (out1, st1), (out2, st2) = results
    ref, acc_ev, _ = gemm_reference(a, b, acc_bits=16, k_chunk=16, partial_sum_bits=16,
                                    acc_overflow="wrap")  # fmt: skip
    assert np.array_equal(out1, ref) and np.array_equal(out2, ref)
    assert np.array_equal(st1.acc_events, acc_ev) and np.array_equal(st2.acc_events, acc_ev)


def test_samples_screened_one_gather_at_a_time_equal_the_direct_reference(monkeypatch):
    monkeypatch.setattr(sys.modules["kernels.blockconv"], "_PATCH_BYTES", 1)  # a sample each
    rng = np.random.default_rng(6)
    x, w = _realistic_conv(rng, 3, 8, 5)
    x[1, :, 2] = 127  # one sample saturates, and continues sequentially
    plan = {"acc_bits": 14, "k_chunk": 8, "partial_sum_bits": 13, "bias_mode": "post"}
    bias = rng.integers(-2000, 2000, 8)
    with screen_block(24):
        out, stats = kernels.conv2d(x, w, plan_of(**plan), padding=1, bias=bias)
    ref, acc_ev, partial_sum_ev = conv2d_reference(x, w, pads=(1, 1, 1, 1), bias=bias, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)
    assert partial_sum_ev[1].any()
