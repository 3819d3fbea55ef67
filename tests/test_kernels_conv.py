"""kernels.conv2d / conv_transpose2d: bit-exact against a direct Python-int convolution that
reduces each output in the documented K order with the plan's registers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_kernels_reference import conv2d_reference, conv_transpose2d_reference

import kernels
from formats.errors import RsimError
from plans import float_plan_of, plan_of


@st.composite
def plans(draw, k_max):
    acc_bits = draw(st.integers(2, 24))
    k_chunk = draw(st.one_of(st.none(), st.integers(1, k_max)))
    plan = {"acc_bits": acc_bits, "acc_overflow": draw(st.sampled_from(["saturate", "wrap"])),
                "k_chunk": k_chunk}  # fmt: skip
    if k_chunk is not None:
        plan["partial_sum_bits"] = draw(st.integers(2, 26))
        plan["partial_sum_overflow"] = draw(st.sampled_from(["saturate", "wrap"]))
    plan["bias_mode"] = draw(st.sampled_from(["preload", "post"]))
    return plan


def _bias(rng, plan, n):
    bits = plan["acc_bits"]
    if plan["bias_mode"] == "post" and plan["k_chunk"] is not None:
        bits = plan["partial_sum_bits"]
    return rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), n)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 2))
    og = 1 if depthwise else draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 6))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 6))
    bits = draw(st.integers(2, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (draw(st.integers(1, 2)), groups * cg, h, w))
    wt = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (groups * og, cg, kh, kw))
    plan = draw(plans(cg * kh * kw))
    geometry = {"stride": stride, "pads": pads, "dilation": dilation, "groups": groups,
                    "pad_value": draw(st.integers(-3, 3)), "k_order": draw(st.sampled_from(["chw", "hwc"]))}  # fmt: skip
    bias = _bias(rng, plan, groups * og) if draw(st.booleans()) else None
    return x, wt, geometry, plan, bias


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases())
def test_conv2d_equals_the_direct_reference_with_groups_depthwise_and_k_order(case):
    x, w, geo, plan, bias = case
    out, stats = kernels.conv2d(x, w, plan_of(**plan), stride=geo["stride"], padding=geo["pads"],
                                dilation=geo["dilation"], groups=geo["groups"],
                                pad_value=geo["pad_value"], k_order=geo["k_order"], bias=bias)
    ref, acc_ev, partial_sum_ev = conv2d_reference(x, w, bias=bias, **geo, **plan)
    assert np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)
    assert np.array_equal(stats.acc_saturations_per_channel, acc_ev.sum(axis=(0, 2, 3)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases(), st.sampled_from([None, 4]))
def test_event_free_convs_take_float32_blas_and_equal_the_direct_reference(case, k_chunk):
    # codes of <= 9 bits, <= 18 taps and a 32-bit register: no partial sum can reach 2^24,
    # the float32 fast path applies whatever the geometry
    x, w, geo, _, bias = case
    plan = {"acc_bits": 32, "acc_overflow": "saturate", "k_chunk": k_chunk}
    out, stats = kernels.conv2d(x, w, plan_of(**plan), stride=geo["stride"], padding=geo["pads"],
                                dilation=geo["dilation"], groups=geo["groups"],
                                pad_value=geo["pad_value"], k_order=geo["k_order"], bias=bias)
    ref, _, _ = conv2d_reference(x, w, bias=bias, **geo, **plan)
    assert out.dtype == np.int64 and np.array_equal(out, ref)
    assert stats.acc_saturations == stats.partial_sum_saturations == stats.outputs_at_risk == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases(), st.integers(0, 2**32 - 1), st.sampled_from([None, 2]))
def test_conv2d_changed_equals_the_direct_reference_on_the_changed_input(case, seed, k_chunk):
    """The accumulators of x from those of x_before, scattering only the changed codes, equal
    the direct reduction of x, with any geometry (groups, stride, dilation, padding)."""
    x_before, w, geo, _, bias = case
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(x_before.shape) < 0.1, x_before + rng.integers(-2, 3, x_before.shape),
                 x_before)  # fmt: skip
    plan = {"acc_bits": 32, "acc_overflow": "saturate", "k_chunk": k_chunk}
    if k_chunk is not None:
        plan |= {"partial_sum_bits": 32, "partial_sum_overflow": "saturate"}
    geo = geo | {"pad_value": 0, "k_order": "chw"}
    conv = {"stride": geo["stride"], "padding": geo["pads"], "dilation": geo["dilation"],
            "groups": geo["groups"], "bias": bias}  # fmt: skip
    before, _ = kernels.conv2d(x_before, w, plan_of(**plan), **conv)
    changed = kernels.conv2d_changed(before, x_before, x, w, plan_of(**plan), max_changed=1.0,
                                     **conv)
    assert changed is not None
    out, stats = changed
    ref, _, _ = conv2d_reference(x, w, bias=bias, **geo, **plan)
    assert out.dtype == np.int64 and np.array_equal(out, ref)
    assert stats.acc_saturations == stats.partial_sum_saturations == stats.outputs_at_risk == 0


def test_conv2d_changed_declines_many_changes_and_possible_overflow():
    rng = np.random.default_rng(3)
    x_before = rng.integers(-100, 100, (2, 3, 6, 6))
    w = rng.integers(-100, 100, (4, 3, 3, 3))
    x = x_before.copy()
    x[0, 0, 0, :3] += 1  # 3 of 216 codes change
    acc, _ = kernels.conv2d(x_before, w, plan_of(acc_bits=32))
    assert kernels.conv2d_changed(acc, x_before, x, w, plan_of(acc_bits=32)) is not None
    assert kernels.conv2d_changed(acc, x_before, x, w, plan_of(acc_bits=32),
                                  max_changed=0.01) is None
    # 27 taps of 100·100 need 19 bits: a 16-bit accumulator could saturate, linearity fails
    acc16, _ = kernels.conv2d(x_before, w, plan_of(acc_bits=16))
    assert kernels.conv2d_changed(acc16, x_before, x, w, plan_of(acc_bits=16)) is None
    with pytest.raises(RsimError, match="must match"):
        kernels.conv2d_changed(acc[:1], x_before, x, w, plan_of(acc_bits=32))


@pytest.mark.parametrize("channels", [63, 64, 65])
def test_float32_conv_stays_exact_across_the_2_to_24_partial_sum_limit(channels):
    # 4x4 taps of (-128)·(-128) = 2^14: K·2^14 reaches 2^24 at 64 channels; beyond it the
    # float32 path must not be taken (a lone +127 tap makes the exact sum odd)
    x = np.full((1, channels, 4, 4), -128, np.int8)
    w = np.full((2, channels, 4, 4), -128, np.int8)
    x[0, 0, 0, 0] = 127
    w[1, 0, 0, 0] = 1
    out, stats = kernels.conv2d(x, w, plan_of(acc_bits=40), bias=np.array([1, -3]))
    want = np.einsum("nchw,ochw->no", x.astype(np.int64), w.astype(np.int64)) + [1, -3]
    assert np.array_equal(out[:, :, 0, 0], want) and stats.acc_saturations == 0


@st.composite
def transposed_cases(draw):
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), 1)
    out_pad = (draw(st.integers(0, max(stride[0], dilation[0]) - 1)), 0)
    pads = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)), 0, draw(st.integers(0, kw - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-40, 40, (1, groups * cg, draw(st.integers(1, 4)), draw(st.integers(1, 4))))
    out_w = stride[1] * (x.shape[3] - 1) + kw - pads[1] - pads[3]
    assume(out_w >= 1)
    w = rng.integers(-40, 40, (groups * cg, og, kh, kw))
    plan = draw(plans(cg * kh * kw))
    bias = _bias(rng, plan, groups * og) if draw(st.booleans()) else None
    geometry = {"stride": stride, "pads": pads, "output_padding": out_pad, "dilation": dilation, "groups": groups}
    return x, w, geometry, plan, bias


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transposed_cases())
def test_conv_transpose2d_equals_the_gather_reference_in_its_documented_order(case):
    x, w, geo, plan, bias = case
    out, stats = kernels.conv_transpose2d(x, w, plan_of(**plan), stride=geo["stride"],
                                          padding=geo["pads"],
                                          output_padding=geo["output_padding"],
                                          dilation=geo["dilation"], groups=geo["groups"],
                                          bias=bias)
    ref, acc_ev, partial_sum_ev = conv_transpose2d_reference(x, w, bias=bias, **geo, **plan)
    assert out.shape == ref.shape and np.array_equal(out, ref)
    assert np.array_equal(stats.acc_events, acc_ev)
    assert np.array_equal(stats.partial_sum_events, partial_sum_ev)


def test_k_order_changes_a_saturating_result_as_the_reference_predicts():
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (1, 4, 5, 5))
    w = rng.integers(-128, 128, (3, 4, 3, 3))
    chw, _ = kernels.conv2d(x, w, plan_of(acc_bits=14), padding=1, k_order="chw")
    hwc, _ = kernels.conv2d(x, w, plan_of(acc_bits=14), padding=1, k_order="hwc")
    ref_hwc, _, _ = conv2d_reference(x, w, pads=(1, 1, 1, 1), acc_bits=14, k_order="hwc")
    assert np.array_equal(hwc, ref_hwc) and not np.array_equal(chw, hwc)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"groups": 3}, "groups"),
        ({"stride": 0}, "stride"),
        ({"padding": (1, 2, 3)}, "padding"),
        ({"dilation": (1, 0)}, "dilation"),
        ({"k_order": "whc"}, "k_order"),
        ({"x_bits": 3}, "x"),
        ({"plan": {"acc_bits": 16}}, "conv2d: plan"),
        ({"plan": float_plan_of("fp16")}, "conv2d: the plan's registers are float"),
    ],
)
def test_bad_conv_arguments_raise_rsim_error_naming_the_argument(kwargs, name):
    x = np.arange(2 * 4 * 4).reshape(1, 2, 4, 4) % 9 - 4
    w = np.ones((2, 2, 3, 3), int)
    kwargs = {"plan": plan_of(acc_bits=16)} | kwargs
    with pytest.raises(RsimError, match=rf"^{name}\b"):
        kernels.conv2d(x, w, **kwargs)


def test_conv_weight_channel_mismatch_names_w():
    with pytest.raises(RsimError, match=r"^w\b"):
        kernels.conv2d(np.zeros((1, 3, 4, 4), int), np.zeros((2, 2, 3, 3), int),
                       plan_of(acc_bits=16))
