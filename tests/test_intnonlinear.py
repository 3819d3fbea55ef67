"""Integer-only softmax, layer norm, GELU, exp and sqrt (kernels.intnonlinear) against Python-int
references of the definitions in their docstrings, written out here with Fractions, against float64
within stated error bounds, and on edge cases."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.errors import RsimError
from kernels.intnonlinear import int_exp, int_gelu, int_layernorm, int_softmax, int_sqrt

ROUNDINGS = ["nearest_even", "nearest_away", "nearest_up", "floor", "toward_zero", "stochastic"]
HYPOTHESIS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the reference: every step of the docstrings on Python ints and Fractions --------------------


def half_up(v: int, k: int) -> int:
    """v / 2^k rounded to nearest, ties toward +inf (k >= 0)."""
    return math.floor(Fraction(v, 2**k) + Fraction(1, 2))


def align(q: int, s: int) -> int:
    return q * 2**s if s >= 0 else half_up(q, -s)


def constant(c: float, w: int) -> int:
    return round(Fraction(c) * 2**w)  # Fraction(c) is the float64 value, times 2^w exactly


def output_code(v: int, s: int, rounding: str, u: float, lo: int, hi: int) -> tuple[int, bool]:
    """(code, saturated): v / 2^s rounded in `rounding` (v·2^-s exactly for s < 0), clamped."""
    x = Fraction(v, 2**s) if s >= 0 else Fraction(v * 2**-s)
    low = math.floor(x)
    frac = x - low
    if rounding == "stochastic":
        r = math.floor(x + Fraction(u))
    elif frac == 0 or rounding == "floor":
        r = low
    elif rounding == "toward_zero":
        r = low + (x < 0)
    elif frac != Fraction(1, 2):
        r = low + (frac > Fraction(1, 2))
    else:
        r = {"nearest_up": low + 1, "nearest_away": low + (x > 0),
             "nearest_even": low + low % 2}[rounding]  # fmt: skip
    c = min(max(r, lo), hi)
    return c, c != r


def out_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def ref_exp(d: int, fl_in: int, w: int) -> int:
    ln2 = constant(math.log(2), w)
    a, b, c = constant(0.3585, w), constant(1.353, w), constant(0.344, w)
    t = max(align(d, w - fl_in), -(w + 2) * ln2)
    z = math.floor(Fraction(-t, ln2))
    p = t + z * ln2
    assert -ln2 < p <= 0
    e0 = half_up(a * half_up((p + b) ** 2, w), w) + c
    return half_up(e0, z)


def ref_softmax(q, fl_in, axis, out_bits, out_fl, signed, w, p, rounding, u):
    lo, hi = out_range(out_bits, signed)
    rows = np.moveaxis(np.asarray(q, dtype=object), axis, -1)
    us = np.moveaxis(u, axis, -1)
    out = np.empty(rows.shape, dtype=object)
    saturated = 0
    for idx in np.ndindex(rows.shape[:-1]):
        row = [int(v) for v in rows[idx]]
        e = [ref_exp(v - max(row), fl_in, w) for v in row]
        total = sum(e)
        k = total.bit_length() - 1 + p
        inv = 2**k // total
        for j, ej in enumerate(e):
            place = idx + (j,)
            out[place], sat = output_code(ej * inv, k - out_fl, rounding, us[place], lo, hi)
            saturated += sat
    return np.moveaxis(out, -1, axis).astype(np.int64), saturated


def ref_layernorm(q, fl_in, gamma, gamma_fl, beta, beta_fl, axes, out_bits, out_fl, eps, signed,
                  norm_fl, p, rounding, u):  # fmt: skip
    lo, hi = out_range(out_bits, signed)
    axes = sorted(a % q.ndim for a in axes)
    kept = [a for a in range(q.ndim) if a not in axes]
    norm_shape = tuple(q.shape[a] for a in axes)
    n = math.prod(norm_shape)
    gammas = [int(v) for v in np.broadcast_to(gamma, norm_shape).reshape(-1)]
    betas = [int(v) for v in np.broadcast_to(beta, norm_shape).reshape(-1)]
    eps_d = round(Fraction(eps) * n * n * Fraction(4) ** fl_in)
    f = max(norm_fl + gamma_fl, beta_fl)
    out = np.empty(q.shape, dtype=np.int64)
    saturated = 0
    for outer in np.ndindex(tuple(q.shape[a] for a in kept)):
        places = []
        for inner in np.ndindex(norm_shape):
            full = [0] * q.ndim
            for a, i in zip(kept, outer):
                full[a] = i
            for a, i in zip(axes, inner):
                full[a] = i
            places.append(tuple(full))
        x = [int(q[i]) for i in places]
        s1, s2 = sum(x), sum(v * v for v in x)
        dev = n * s2 - s1 * s1 + eps_d
        for j, place in enumerate(places):
            if dev == 0:
                y = 0
            else:
                g = max(0, (32 - dev.bit_length()) // 2)
                root = math.isqrt(dev * 4**g)
                k = root.bit_length() - 1 + p
                y = half_up((n * x[j] - s1) * (2**k // root), k - g - norm_fl)
            acc = y * gammas[j] * 2 ** (f - norm_fl - gamma_fl) + betas[j] * 2 ** (f - beta_fl)
            out[place], sat = output_code(acc, f - out_fl, rounding, u[place], lo, hi)
            saturated += sat
    return out, saturated


def ref_gelu(q, fl_in, out_bits, out_fl, signed, w, rounding, u):
    lo, hi = out_range(out_bits, signed)
    clip = round(Fraction(1.769 * math.sqrt(2)) * 2**w)
    a2 = constant(-0.2888 / 2, w)
    out = np.empty(q.shape, dtype=np.int64)
    saturated = 0
    for idx in np.ndindex(q.shape):
        v = int(q[idx])
        m = min(align(abs(v), w - fl_in), clip) - clip
        erf_abs = half_up(a2 * half_up(m * m, w), w) + 2**w
        sign = (v > 0) - (v < 0)
        h = 2**w + sign * erf_abs
        out[idx], sat = output_code(v * h, w + 1 + fl_in - out_fl, rounding, u[idx], lo, hi)
        saturated += sat
    return out, saturated


def uniforms(rounding: str, seed: int, shape) -> tuple[np.random.Generator | None, np.ndarray]:
    """The generator handed to the kernel and the draws the reference reads (the same stream)."""
    if rounding != "stochastic":
        return None, np.zeros(shape)
    return np.random.default_rng(seed), np.random.default_rng(seed).random(shape)


# -- strategies --------------------------------------------------------------------------------


@st.composite
def code_arrays(draw, max_dims=3, max_side=5, max_bits=32):
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims)))
    bits = draw(st.integers(2, max_bits))
    half = 2 ** (bits - 1)
    values = draw(st.lists(st.integers(-half, half - 1), min_size=math.prod(shape),
                           max_size=math.prod(shape)))  # fmt: skip
    return np.array(values, dtype=np.int64).reshape(shape)


@st.composite
def output_formats(draw):
    signed = draw(st.booleans())
    bits = draw(st.integers(1, 64 if signed else 63))
    rounding = draw(st.sampled_from(ROUNDINGS))
    return dict(out_bits=bits, signed=signed, rounding=rounding, seed=draw(st.integers(0, 9)))


# -- (1) bit-exact against the reference ---------------------------------------------------------


@HYPOTHESIS
@given(code_arrays(), st.data())
def test_softmax_equals_the_python_int_definition(q, data):
    if data.draw(st.booleans()):  # one far outlier: narrow rows through the computed exponential
        q.flat[0] = -(2**31)
    axis = data.draw(st.integers(-q.ndim, q.ndim - 1))
    w = data.draw(st.integers(4, 30))
    p = data.draw(st.integers(4, min(30, 61 - w - q.shape[axis].bit_length())))
    fl_in = data.draw(st.integers(w - 30, w + 30))
    out_fl = data.draw(st.integers(0, w + p - 1))
    fmt = data.draw(output_formats())
    rng, u = uniforms(fmt["rounding"], fmt["seed"], q.shape)
    codes, fl, saturated = int_softmax(q, fl_in, axis, fmt["out_bits"], out_fl,
                                       signed=fmt["signed"], exp_fl=w, recip_bits=p,
                                       rounding=fmt["rounding"], rng=rng)  # fmt: skip
    want, want_saturated = ref_softmax(q, fl_in, axis, fmt["out_bits"], out_fl,
                                       fmt["signed"], w, p, fmt["rounding"], u)  # fmt: skip
    assert fl == out_fl
    assert np.array_equal(codes, want) and np.count_nonzero(saturated) == want_saturated


@HYPOTHESIS
@given(code_arrays(max_bits=16), st.data())
def test_layernorm_equals_the_python_int_definition(q, data):
    axes = data.draw(st.lists(st.integers(-q.ndim, q.ndim - 1), min_size=1, max_size=q.ndim,
                              unique_by=lambda a: a % q.ndim))  # fmt: skip
    norm_shape = tuple(q.shape[a] for a in sorted(a % q.ndim for a in axes))
    # gamma/beta: the normalized shape, some sides 1 or leading sides dropped (broadcasting)
    drop = data.draw(st.integers(0, len(norm_shape)))
    affine_shape = tuple(s if data.draw(st.booleans()) else 1 for s in norm_shape[drop:])
    size = math.prod(affine_shape)
    gamma, beta = (np.array(data.draw(st.lists(st.integers(-(2**12), 2**12), min_size=size,
                                               max_size=size))).reshape(affine_shape)
                   for _ in range(2))  # fmt: skip
    fl_in, gamma_fl, beta_fl = (data.draw(st.integers(-4, 16)) for _ in range(3))
    p = data.draw(st.integers(4, 30))
    norm_fl = data.draw(st.integers(0, p))
    f = max(norm_fl + gamma_fl, beta_fl)
    out_fl = data.draw(st.integers(f - 24, f + 6))  # shifts of -6..24 bits from the accumulator
    eps = data.draw(st.sampled_from([0.0, 1e-12, 1e-5, 1e-3, 0.5]))
    fmt = data.draw(output_formats())
    rng, u = uniforms(fmt["rounding"], fmt["seed"], q.shape)
    codes, fl, saturated = int_layernorm(q, fl_in, gamma, gamma_fl, beta, beta_fl, axes,
                                         fmt["out_bits"], out_fl, eps=eps, signed=fmt["signed"],
                                         norm_fl=norm_fl, recip_bits=p, rounding=fmt["rounding"],
                                         rng=rng)  # fmt: skip
    want, want_saturated = ref_layernorm(q, fl_in, gamma, gamma_fl, beta, beta_fl, axes,
                                         fmt["out_bits"], out_fl, eps, fmt["signed"], norm_fl, p,
                                         fmt["rounding"], u)  # fmt: skip
    assert fl == out_fl
    assert np.array_equal(codes, want) and np.count_nonzero(saturated) == want_saturated


@HYPOTHESIS
@given(code_arrays(max_dims=2, max_side=8), st.data())
def test_gelu_equals_the_python_int_definition(q, data):
    w = data.draw(st.integers(4, 29))
    fl_in = data.draw(st.integers(w - 30, w + 30))
    out_fl = data.draw(st.integers(fl_in - 8, min(64, fl_in + w + 1)))
    fmt = data.draw(output_formats())
    rng, u = uniforms(fmt["rounding"], fmt["seed"], q.shape)
    codes, fl, saturated = int_gelu(q, fl_in, fmt["out_bits"], out_fl, signed=fmt["signed"],
                                    erf_fl=w, rounding=fmt["rounding"], rng=rng)  # fmt: skip
    want, want_saturated = ref_gelu(q, fl_in, fmt["out_bits"], out_fl, fmt["signed"], w,
                                    fmt["rounding"], u)  # fmt: skip
    assert fl == out_fl
    assert np.array_equal(codes, want) and np.count_nonzero(saturated) == want_saturated


@HYPOTHESIS
@given(code_arrays(max_dims=2, max_side=8), st.integers(4, 30), st.data())
def test_exp_equals_the_python_int_definition(q, w, data):
    fl_in = data.draw(st.integers(w - 30, w + 30))
    d = np.maximum(q - q.max(), -(2**31))  # int_exp takes codes of at most 32 bits too
    codes, fl, saturated = int_exp(d, fl_in, exp_fl=w)
    want = np.vectorize(lambda v: ref_exp(int(v), fl_in, w), otypes=[np.int64])(d)
    assert fl == w and not saturated.any() and np.array_equal(codes, want)


def test_softmax_tabulated_and_computed_exponentials_agree():
    """Rows of 8-bit codes give the same outputs whether the exponential comes from the table
    (narrow span) or is computed per element (a wide row in the same tensor disables the table)."""
    rng = np.random.default_rng(3)
    q = rng.integers(-128, 128, (50, 40))
    wide = np.vstack([q, [[2**30] + [-(2**30)] * 39]])
    narrow = int_softmax(q, 4, 1, 32, 30)
    both = int_softmax(wide, 4, 1, 32, 30)
    assert np.array_equal(both.codes[:50], narrow.codes)
    assert 2**30 - 2**15 < both.codes[50, 0] <= 2**30 and not both.codes[50, 1:].any()


@pytest.mark.parametrize("bits, rounding", [(32, "nearest_even"), (8, "nearest_up"),
                                             (8, "stochastic")])  # fmt: skip
def test_gelu_of_many_blocks_equals_the_python_int_definition(bits, rounding):
    """9000 codes: several kernel blocks computed directly (wide codes, stochastic draws sliced
    per block) or looked up in the table of the 8-bit codes."""
    rng = np.random.default_rng(bits)
    q = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (3, 3000))
    gen, u = uniforms(rounding, 4, q.shape)
    fl_in = 20 if bits == 32 else 4
    for out_bits in (32, 6):
        codes, _, saturated = int_gelu(q, fl_in, out_bits, 4, rounding=rounding, rng=gen)
        want, want_saturated = ref_gelu(q, fl_in, out_bits, 4, True, 14, rounding, u)
        assert np.array_equal(codes, want) and np.count_nonzero(saturated) == want_saturated
        gen, u = uniforms(rounding, 4, q.shape)


# -- (2) accuracy against float64 ----------------------------------------------------------------


def float_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


ERF = np.vectorize(math.erf)

# Worst errors of the integer pipelines themselves (outputs fine enough that their rounding does
# not count), measured on the seeded data below with a little headroom: softmax 7.7e-4, layer norm
# 3.3e-4 (norm_fl 12), GELU 0.01815 (I-BERT's erf polynomial itself: 0.01815 in float64).
SOFTMAX_APPROX, LAYERNORM_APPROX, GELU_APPROX = 1e-3, 5e-4, 0.0185


@pytest.mark.parametrize("fl_in", [2, 3, 4, 5])
def test_softmax_of_8bit_scores_is_within_the_stated_error(fl_in):
    rng = np.random.default_rng(fl_in)
    q = rng.integers(-128, 128, (256, 128)).astype(np.int8)
    q[:64] = np.clip(rng.normal(0, 24, (64, 128)).round(), -128, 127)  # peaked rows
    want = float_softmax(q / 2.0**fl_in, -1)
    fine = int_softmax(q, fl_in, -1, 16, 15, signed=False)
    assert np.abs(fine.codes / 2.0**15 - want).max() <= SOFTMAX_APPROX
    for signed, out_fl in ((True, 7), (False, 8)):
        hi = 2**out_fl - 1
        codes, _, saturated = int_softmax(q, fl_in, -1, 8, out_fl, signed=signed)
        clipped = want > (hi + 0.5) / 2**out_fl  # 1.0 does not fit fixed<8,7> or ufixed<8,8>
        err = np.abs(codes / 2.0**out_fl - want)[~clipped]
        assert err.max() <= 0.5 / 2**out_fl + SOFTMAX_APPROX
        assert np.all(codes[clipped] == hi) and np.array_equal(saturated, clipped)


@pytest.mark.parametrize("fl_in", [3, 4, 5])
def test_layernorm_of_8bit_activations_is_within_the_stated_error(fl_in):
    rng = np.random.default_rng(10 + fl_in)
    q = rng.normal(0, 30, (64, 768)) + rng.normal(0, 20, (64, 1))  # row means vary too
    q = np.clip(q.round(), -128, 127).astype(np.int8)
    q[:8] = np.clip(rng.normal(0, 3, (8, 768)).round(), -128, 127)  # narrow rows: few codes used
    gamma = rng.integers(16, 128, 768)  # fl 6: 0.25 .. 2
    beta = rng.integers(-64, 64, 768)  # fl 6: -1 .. 1
    x = q / 2.0**fl_in
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    want = want * gamma / 64 + beta / 64
    fine = int_layernorm(q, fl_in, gamma, 6, beta, 6, -1, 24, 16)
    assert np.abs(fine.codes / 2.0**16 - want).max() <= LAYERNORM_APPROX
    codes, _, saturated = int_layernorm(q, fl_in, gamma, 6, beta, 6, -1, 8, 4)
    clipped = (want >= 127.5 / 16) | (want <= -128.5 / 16)
    assert np.abs(codes / 16 - want)[~clipped].max() <= 0.5 / 16 + LAYERNORM_APPROX
    assert np.array_equal(saturated, clipped)


@pytest.mark.parametrize("fl_in", [3, 4, 5])
def test_gelu_of_every_8bit_code_is_within_the_stated_error(fl_in):
    q = np.arange(-128, 128)
    x = q / 2.0**fl_in
    want = x / 2 * (1 + ERF(x / math.sqrt(2)))
    fine = int_gelu(q, fl_in, 24, 16)
    assert np.abs(fine.codes / 2.0**16 - want).max() <= GELU_APPROX
    codes, _, saturated = int_gelu(q.astype(np.int8), fl_in, 8, fl_in)
    assert not saturated.any()
    assert np.abs(codes / 2.0**fl_in - want).max() <= 0.5 / 2**fl_in + GELU_APPROX


# -- (3) the square root -------------------------------------------------------------------------


def test_sqrt_is_the_floor_square_root_of_every_n_below_2_to_the_20():
    n = np.arange(1 << 20, dtype=np.int64)
    r = int_sqrt(n)
    assert np.all(r * r <= n) and np.all((r + 1) * (r + 1) > n)


def test_sqrt_of_63_bit_integers_equals_math_isqrt():
    rng = np.random.default_rng(5)
    n = rng.integers(0, 2**63 - 1, 20000, dtype=np.int64, endpoint=True)
    n = n >> rng.integers(0, 63, n.size)  # every magnitude, not only the top binades
    k = np.array([3037000499, 2**31, 2**16, 3, 1], dtype=np.int64)
    edges = np.concatenate([k * k, k * k - 1, k * k + 1, [0, 1, 2, 2**62, 2**63 - 1]])
    edges = edges[(edges >= 0)]
    for values in (n, edges):
        assert int_sqrt(values).tolist() == [math.isqrt(int(v)) for v in values]
    assert int_sqrt(np.uint8(200)) == 14 and int_sqrt(np.array([[16]], np.int8)).shape == (1, 1)


# -- (4) edge cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-(2**31), -128, 0, 127, 2**31 - 1])
def test_softmax_of_equal_codes_is_one_over_the_row_length(value):
    for n in (1, 2, 3, 4, 5, 7, 8, 16, 100, 128):
        codes, _, saturated = int_softmax(np.full((3, n), value), 4, -1, 16, 15, signed=False)
        assert np.all(codes == codes[0, 0]) and not saturated.any()
        if n & (n - 1) == 0:
            assert codes[0, 0] == 2**15 // n
        assert abs(int(codes[0, 0]) - 2**15 / n) < 1
    codes, _, saturated = int_softmax(np.full((2, 1), value, np.int64), 0, 1, 8, 7)
    assert codes.tolist() == [[127], [127]] and saturated.all()  # 1.0 does not fit fixed<8,7>


def test_softmax_of_a_row_of_the_most_negative_code_with_one_maximum():
    row = np.full(128, -128, np.int8)
    row[77] = 127
    codes, _, saturated = int_softmax(row, 4, 0, 8, 7)
    assert codes[77] == 127 and np.flatnonzero(saturated).tolist() == [77]
    assert not np.delete(codes, 77).any()
    codes, _, _ = int_softmax(row, 0, 0, 16, 15)  # exp(-255) is far below the LSB as well
    assert codes[77] == 2**15 - 1 and not np.delete(codes, 77).any()


def test_softmax_depends_only_on_differences_up_to_the_largest_codes():
    rng = np.random.default_rng(6)
    q = rng.integers(-128, 128, (20, 32))
    shifted = q + (2**31 - 1 - q.max())  # the largest code becomes 2^31 - 1
    for fl_in in (-3, 4, 20):
        assert np.array_equal(int_softmax(shifted, fl_in, 1, 16, 14).codes,
                              int_softmax(q, fl_in, 1, 16, 14).codes)  # fmt: skip


def test_gelu_of_large_inputs_is_the_input_or_zero():
    """Beyond |x| = 1.769·√2 the erf polynomial is clipped to ±1 exactly: GELU(x) = x or 0."""
    for fl_in in (0, 4, 16):
        q = np.array([math.ceil(2.51 * 2**fl_in), 2**24, 2**31 - 1])
        codes, fl, saturated = int_gelu(q, fl_in, 32, fl_in)
        assert codes.tolist() == q.tolist() and not saturated.any()
        assert not int_gelu(-q, fl_in, 32, fl_in).codes.any()
    assert int_gelu(np.int32(2**31 - 1), 0, 8, 0) == (np.array(127), 0, 1)
    assert int_gelu(np.int32(2**31 - 1), 0, 8, 0).codes.shape == ()


@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_layernorm_of_constant_groups_is_beta(eps):
    rng = np.random.default_rng(7)
    q = np.repeat(rng.integers(-(2**15), 2**15, (6, 1, 1)), 48, axis=2).reshape(6, 4, 12)
    gamma = rng.integers(-128, 128, (4, 12))
    beta = rng.integers(-128, 128, (4, 12))
    codes, _, saturated = int_layernorm(q, 3, gamma, 6, beta, 6, (1, 2), 8, 4, eps=eps)
    want = [[round(Fraction(int(b), 4)) for b in row] for row in beta]  # half to even
    assert not saturated.any() and all(c.tolist() == want for c in codes)


def test_layernorm_depends_only_on_differences_up_to_16_bit_codes():
    rng = np.random.default_rng(8)
    q = rng.integers(-128, 128, (5, 768))
    gamma, beta = rng.integers(16, 128, 768), rng.integers(-64, 64, 768)
    base = int_layernorm(q, 4, gamma, 6, beta, 6, -1, 8, 4).codes
    shifted = int_layernorm(q + 2**15 - 128, 4, gamma, 6, beta, 6, -1, 8, 4).codes
    assert np.array_equal(base, shifted)


# -- errors ------------------------------------------------------------------------------------


Q = np.zeros((2, 3), np.int64)
G = np.ones(3, np.int64)


@pytest.mark.parametrize("call, named", [
    (lambda: int_softmax(Q.astype(float), 4, -1, 8, 7), "codes"),
    (lambda: int_softmax(Q + 2**31, 4, -1, 8, 7), "codes"),
    (lambda: int_softmax(Q, 4, 2, 8, 7), "axis"),
    (lambda: int_softmax(Q[0, 0], 4, 0, 8, 7), "codes"),
    (lambda: int_softmax(Q, 4, -1, 0, 7), "out_bits"),
    (lambda: int_softmax(Q, 4, -1, 8, 40), "out_fl"),
    (lambda: int_softmax(Q, 4, -1, 8, 7, exp_fl=31), "exp_fl"),
    (lambda: int_softmax(Q, 50, -1, 8, 7), "fl_in"),
    (lambda: int_softmax(Q, 20, -1, 8, 7, exp_fl=30, recip_bits=30), "recip_bits"),
    (lambda: int_softmax(Q, 4, -1, 8, 7, rounding="up"), "rounding"),
    (lambda: int_softmax(Q, 4, -1, 8, 7, rounding="stochastic"), "rng"),
    (lambda: int_exp(Q + 1, 4), "codes"),
    (lambda: int_sqrt(np.array([-1])), "n"),
    (lambda: int_sqrt(np.array([1.0])), "n"),
    (lambda: int_layernorm(Q, 4, np.ones(2, int), 6, G, 6, -1, 8, 4), "gamma_codes"),
    (lambda: int_layernorm(Q, 4, G, 6, G.astype(float), 6, -1, 8, 4), "beta_codes"),
    (lambda: int_layernorm(Q, 4, G, 6, G, 6, (1, -1), 8, 4), "axes"),
    (lambda: int_layernorm(Q, 4, G, 6, G, 6, (), 8, 4), "axes"),
    (lambda: int_layernorm(Q, 4, G, 6, G, 6, -1, 8, 4, eps=-1.0), "eps"),
    (lambda: int_layernorm(Q, 4, G, 6, G, 6, -1, 8, 4, norm_fl=20), "norm_fl"),
    (lambda: int_layernorm(Q, 4, G, 6, G, 6, -1, 8, -60), "out_fl"),
    (lambda: int_layernorm(Q + 2**31 - 1, 4, G, 6, G, 6, -1, 8, 4), "codes"),
    (lambda: int_gelu(Q, 4, 8, 4, erf_fl=30), "erf_fl"),
    (lambda: int_gelu(Q, 4, 8, -60), "out_fl"),
    (lambda: int_gelu(Q, 4, 65, 4), "out_bits"),
])  # fmt: skip
def test_bad_arguments_raise_an_rsim_error_naming_them(call, named):
    with pytest.raises(RsimError, match=rf"^{named}\b"):
        call()
