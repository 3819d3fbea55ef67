"""Integer-only Softmax, LayerNorm and GELU, as an accelerator without a float unit computes them.

The schemes are I-BERT's (Kim et al., ICML 2021): a second-order polynomial exponential after an
ln2 range reduction and shifts, GELU through a second-order polynomial erf, LayerNorm through an
integer Newton square root. I-BERT's scales are real; rsim's are powers of two (value = code ·
2^-fl), so every real constant here is put on a power-of-two working grid 2^-W instead of on the
input's scale, and the input is moved onto that grid by a shift. Every function is defined
completely in integer arithmetic by the rules below and its docstring.

- Constants: K(c, W) = round(c · 2^W), the float64 product rounded to the nearest integer (no
  constant used here has a tie for W <= 30).
- Internal rounding: rshift(v, k) = floor((v + 2^(k−1)) / 2^k) for k > 0 and v for k = 0 (add
  half an LSB, arithmetic shift right: ties toward +inf). Every intermediate shift rounds so.
- Moving codes to a grid: align(q, s) = q · 2^s for s >= 0 (exact), rshift(q, −s) for s < 0.
- Output stage: round(v / 2^s) in the caller's `rounding` (for stochastic, floor(v / 2^s + u)
  with u = rng.random(codes.shape)[index], the output element's index in C order), v · 2^−s for
  s < 0 (exact), then saturation to the `out_bits` range (two's complement, or unsigned with
  signed=False); saturated outputs are counted. This is `kernels.requant.requantize_to_range`'s
  pass, called on each row or block.
- Registers: each intermediate's bound is stated with its definition. The simulator holds them in
  int64; the wrapper computes the bounds for the given codes and parameters and raises RsimError
  before running if any would reach 2^62. No intermediate wraps or saturates except the clamps
  stated (which change no result) and the output stage.
- Inputs are integer codes in [−2^31, 2^31) (32-bit formats at most).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from formats.base import check_int, int_dtype_for
from formats.errors import RsimError
from formats.modes import Rounding, as_rounding
from kernels.requant import _shift_saturate
from kernels.threads import threads_for

EXP_POLY = (0.3585, 1.353, 0.344)  # I-BERT: exp(p) ≈ a·(p + b)^2 + c for p in (−ln2, 0]
ERF_POLY = (-0.2888, -1.769)  # I-BERT: erf(v) ≈ sgn(v)·(a·(min(|v|, −b) + b)^2 + 1)
CODE_LIMIT = 1 << 31  # inputs are codes in [−2^31, 2^31)
REGISTER_LIMIT_BITS = 62  # every intermediate stays below 2^62 in magnitude
SQRT_RADICAND_BITS = 32  # LayerNorm normalizes the variance to 31-32 bits before the square root
LUT_LIMIT = 1 << 16  # softmax (exp) and GELU tabulate a function of the code below this span


class IntOutput(NamedTuple):
    """Codes of the result, their fractional length, and the mask of the outputs that saturated
    (shaped like the codes)."""

    codes: np.ndarray
    fl: int
    saturated: np.ndarray


# -- scalar kernels ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _rshift(v, k):
    """floor((v + 2^(k−1)) / 2^k) for k > 0, v for k = 0: the internal rounding shift."""
    if k == 0:
        return v
    return (v + (np.int64(1) << (k - 1))) >> k


@njit(cache=True, inline="always")
def _align(q, s):
    """q on a grid 2^s finer (s >= 0, exact) or 2^−s coarser (rounded by _rshift)."""
    if s >= 0:
        return q << s
    return _rshift(q, -s)


@njit(cache=True, inline="always")
def _bit_length(v):
    """Bits of a non-negative int64 (0 for 0)."""
    bits = 0
    while v >= 256:
        v >>= 8
        bits += 8
    while v > 0:
        v >>= 1
        bits += 1
    return bits


@njit(cache=True)
def _isqrt(n):
    """floor(sqrt(n)) of a non-negative int64 by Newton's iteration from above (I-BERT's i-sqrt)."""
    if n == 0:
        return np.int64(0)
    x = np.int64(1) << ((_bit_length(n) + 1) // 2)
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


@njit(cache=True, inline="always")
def _exp_code(d, k):
    """exp of a non-positive code d on the working grid; k = (align shift, t_min, ln2, b, a, c, W)
    (see `int_exp`)."""
    shift, t_min, ln2, b, a, c, w = k
    t = max(_align(np.int64(d), shift), t_min)
    z = (-t) // ln2
    u = t + z * ln2 + b
    e0 = _rshift(a * _rshift(u * u, w), w) + c
    return _rshift(e0, z)


# -- array kernels -----------------------------------------------------------------------------

BLOCK = 4096  # elements per block of the element-wise kernels (its scratch stays in cache)


@njit(cache=True, parallel=True, nogil=True)
def _exp_array(d, k, out):
    for i in prange(d.size):
        out[i] = _exp_code(d[i], k)


@njit(cache=True, parallel=True, nogil=True)
def _isqrt_array(n, out):
    for i in prange(n.size):
        out[i] = _isqrt(np.int64(n[i]))


@njit(cache=True, parallel=True, nogil=True)
def _softmax_rows(x, lut, d_lo, use_lut, k, recip_bits, out_fl, rounding, u, lo, hi, out,
                  saturated):  # fmt: skip
    """Rows of x (rows, n) through `int_softmax`; u is (rows, n) for stochastic rounding, else
    one dummy row."""
    rows, n = x.shape
    for r in prange(rows):
        m = np.int64(x[r, 0])
        for j in range(1, n):
            m = max(m, np.int64(x[r, j]))
        e = np.empty(n, np.int64)
        total = np.int64(0)
        for j in range(n):
            d = np.int64(x[r, j]) - m
            e[j] = lut[d - d_lo] if use_lut else _exp_code(d, k)
            total += e[j]
        top = _bit_length(total) - 1 + recip_bits
        inv = (np.int64(1) << top) // total
        for j in range(n):
            e[j] *= inv
        draws = u[min(np.int64(r), u.shape[0] - 1)]
        _shift_saturate(e, top - out_fl, rounding, draws, lo, hi, out[r], saturated[r])


@njit(cache=True, parallel=True, nogil=True)
def _layernorm_rows(x, gamma, beta, eps_code, norm_fl, recip_bits, gamma_shift, beta_shift,
                    out_shift, rounding, u, lo, hi, out, saturated):  # fmt: skip
    """Groups of x (rows, n) through `int_layernorm`; u as in `_softmax_rows`."""
    rows, n = x.shape
    for r in prange(rows):
        s1 = np.int64(0)
        s2 = np.int64(0)
        for j in range(n):
            v = np.int64(x[r, j])
            s1 += v
            s2 += v * v
        dev = n * s2 - s1 * s1 + eps_code
        inv = np.int64(0)
        y_shift = 0
        if dev > 0:
            g = max(0, (SQRT_RADICAND_BITS - _bit_length(dev)) // 2)
            root = _isqrt(dev << (2 * g))
            top = _bit_length(root) - 1 + recip_bits
            inv = (np.int64(1) << top) // root
            y_shift = top - g - norm_fl
        acc = np.empty(n, np.int64)
        for j in range(n):
            y = _rshift((n * np.int64(x[r, j]) - s1) * inv, y_shift)
            acc[j] = ((y * gamma[j]) << gamma_shift) + (beta[j] << beta_shift)
        draws = u[min(np.int64(r), u.shape[0] - 1)]
        _shift_saturate(acc, out_shift, rounding, draws, lo, hi, out[r], saturated[r])


@njit(cache=True, parallel=True, nogil=True)
def _gelu_array(x, shift, clip, a, w, out_shift, rounding, u, lo, hi, out, saturated):
    """x (flat) through `int_gelu`, in blocks; u is like x for stochastic rounding, else a dummy."""
    one = np.int64(1) << w
    for b in prange((x.size + BLOCK - 1) // BLOCK):
        start, stop = b * BLOCK, min((b + 1) * BLOCK, x.size)
        v = np.empty(stop - start, np.int64)
        for i in range(start, stop):
            q = np.int64(x[i])
            m = min(_align(abs(q), shift), clip) - clip
            erf_abs = _rshift(a * _rshift(m * m, w), w) + one
            v[i - start] = q * (one + (erf_abs if q > 0 else (-erf_abs if q < 0 else 0)))
        _shift_saturate(v, out_shift, rounding, u[start:stop] if u.size == x.size else u, lo, hi,
                        out[start:stop], saturated[start:stop])  # fmt: skip


@njit(cache=True, parallel=True, nogil=True)
def _lookup(x, first, table, table_saturated, out, saturated):
    """out = table[x − first], and whether that entry saturated."""
    for i in prange(x.size):
        j = np.int64(x[i]) - first
        out[i] = table[j]
        saturated[i] = table_saturated[j]


# -- validation helpers ------------------------------------------------------------------------


def _codes(x: object, what: str) -> np.ndarray:
    """Integer codes within [−2^31, 2^31), as a C-contiguous signed array (dtype kept if signed)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"{what}: must be integer codes, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < -CODE_LIMIT or int(arr.max()) >= CODE_LIMIT):
        raise RsimError(f"{what}: codes must lie in [-2^31, 2^31), got {arr.min()}..{arr.max()}")
    return np.require(arr, np.int64 if arr.dtype.kind == "u" else None, "C")


def _magnitude(arr: np.ndarray) -> int:
    """max |code| (0 for an empty array)."""
    return max(abs(int(arr.min())), abs(int(arr.max()))) if arr.size else 0


def _register(bits: int, what: str, register: str) -> None:
    if bits > REGISTER_LIMIT_BITS:
        raise RsimError(f"{what}: {register} would need {bits} bits, more than the "
                        f"{REGISTER_LIMIT_BITS} the simulator holds; use narrower codes or "
                        "smaller fractional lengths")  # fmt: skip


def _output_stage(
    out_bits: int, signed: bool, rounding: str | Rounding, rng: object, shape: tuple[int, ...]
) -> tuple[int, int, np.dtype, Rounding, np.ndarray]:
    """(lo, hi, code dtype, rounding, uniform draws shaped like the output or a dummy)."""
    check_int(out_bits, "out_bits", 1, 64 if signed else 63)
    hi = (1 << (out_bits - 1)) - 1 if signed else (1 << out_bits) - 1
    lo = -hi - 1 if signed else 0
    mode = as_rounding(rounding)
    if mode is not Rounding.STOCHASTIC:
        return lo, hi, int_dtype_for(lo, hi), mode, np.zeros((1,) * max(len(shape), 1))
    if not isinstance(rng, np.random.Generator):
        raise RsimError("rng: rounding=stochastic needs a numpy.random.Generator (seed it for a "
                        "reproducible run)")  # fmt: skip
    return lo, hi, int_dtype_for(lo, hi), mode, rng.random(shape)


def _to_rows(arr: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """arr with `axes` moved to the end (in order) and flattened: shape (rows, prod of axes)."""
    moved = np.moveaxis(arr, axes, range(arr.ndim - len(axes), arr.ndim))
    n = math.prod(arr.shape[a] for a in axes)
    return np.ascontiguousarray(moved).reshape(-1, n)


def _from_rows(rows: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """The inverse of `_to_rows` for an array of `shape`."""
    others = [s for i, s in enumerate(shape) if i not in axes]
    moved = rows.reshape(*others, *(shape[a] for a in axes))
    return np.moveaxis(moved, range(len(shape) - len(axes), len(shape)), axes)


def _axes(axes: int | tuple[int, ...] | list[int], ndim: int, what: str) -> tuple[int, ...]:
    """Distinct axes in [−ndim, ndim) as sorted non-negative ints."""
    items = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    if not items:
        raise RsimError(f"{what}: name at least one axis")
    out = []
    for a in items:
        out.append(check_int(a, what, -ndim, ndim - 1) % ndim)
    if len(set(out)) != len(out):
        raise RsimError(f"{what}: axes must be distinct, got {items}")
    return tuple(sorted(out))


def _exp_constants(exp_fl: int, fl_in: int) -> tuple[int, ...]:
    """(align shift, t_min, ln2, b, a, c, W) for `_exp_code`, as `int_exp` defines them."""
    w = exp_fl
    ln2 = round(math.log(2) * 2**w)
    a, b, c = (round(v * 2**w) for v in EXP_POLY)
    return (w - fl_in, -(w + 2) * ln2, ln2, b, a, c, w)


def _check_exp_grid(fl_in: int, exp_fl: int) -> None:
    check_int(exp_fl, "exp_fl", 4, 30)
    check_int(fl_in, "fl_in", exp_fl - 30, exp_fl + 30)


# -- public API ----------------------------------------------------------------------------------


def int_exp(codes: np.ndarray, fl_in: int, *, exp_fl: int = 15) -> IntOutput:
    """exp(x) of non-positive codes x = q · 2^-fl_in, as codes on the grid 2^-exp_fl (W below).

    Constants (K as in the module docstring): ln2 = K(ln 2, W), b = K(1.353, W), a = K(0.3585, W),
    c = K(0.344, W) (I-BERT's exp(p) ≈ a(p + b)^2 + c on (−ln 2, 0]). For each code q <= 0:

    1. t = max(align(q, W − fl_in), −(W + 2)·ln2): x on the grid 2^-W. The clamp changes no
       result (every t <= −(W + 2)·ln2 gives 0) and bounds t to ceil(log2((W + 2)·ln2)) + 1 bits
       (20 for W = 15).
    2. z = floor(−t / ln2) in 0..W + 2 (an exact integer division by the constant ln2), and
       p = t + z·ln2 in (−ln2, 0]: x = p − z·ln 2.
    3. u = p + b in (b − ln2, b]: W + 1 bits unsigned; u² < 1.84 · 2^2W: 2W + 1 bits (31).
    4. e0 = rshift(a · rshift(u², W), W) + c ≈ exp(p) · 2^W in [2^(W−1), 2^(W+1)); the product
       a · rshift(u², W) < 0.66 · 2^2W: 2W bits (30).
    5. result = rshift(e0, z) ≈ exp(x) · 2^W, W + 1 bits unsigned.

    Needs exp_fl in 4..30 and fl_in within 30 of exp_fl. Nothing saturates; int64 codes. Positive
    codes raise RsimError (softmax subtracts the row maximum first).
    """
    _check_exp_grid(fl_in, exp_fl)
    arr = _codes(codes, "codes")
    if arr.size and arr.max() > 0:
        raise RsimError(f"codes: int_exp takes non-positive codes (x − max), got up to {arr.max()}")
    out = np.empty(arr.shape, np.int64)
    with threads_for(arr.size):
        _exp_array(arr.reshape(-1), _exp_constants(exp_fl, fl_in), out.reshape(-1))
    return IntOutput(out, exp_fl, np.zeros(arr.shape, np.bool_))


def int_sqrt(n: np.ndarray | int) -> np.ndarray:
    """floor(sqrt(n)) of non-negative integers below 2^63, exactly, as int64.

    I-BERT's i-sqrt: x0 = 2^ceil(bits(n)/2) >= sqrt(n), then x_(i+1) = floor((x_i + floor(n/x_i))
    / 2) while it decreases; the last x_i is floor(sqrt(n)) (n = 0 gives 0). Every value fits in
    n's register; the quotient n / x_i is the one divider.
    """
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"n: must be integers, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 1 << 63):
        raise RsimError(f"n: must lie in [0, 2^63), got {arr.min()}..{arr.max()}")
    flat = np.ascontiguousarray(arr, dtype=np.int64).reshape(-1)
    out = np.empty(flat.size, np.int64)
    with threads_for(64 * flat.size):
        _isqrt_array(flat, out)
    return out.reshape(arr.shape)


def int_softmax(
    codes: np.ndarray,
    fl_in: int,
    axis: int,
    out_bits: int,
    out_fl: int,
    *,
    signed: bool = True,
    exp_fl: int = 15,
    recip_bits: int = 16,
    rounding: str | Rounding = "nearest_even",
    rng: np.random.Generator | None = None,
) -> IntOutput:
    """softmax(x) along `axis` of codes x = q · 2^-fl_in, as codes of (out_bits, out_fl).

    Per row of n codes along the axis (W = exp_fl, P = recip_bits):

    1. m = max(q); e_j = `int_exp`(q_j − m, fl_in, exp_fl) (q_j − m: 33 bits signed), each in
       [0, 2^(W+1)), the row maximum's at least 2^(W−1).
    2. S = sum(e_j): W + 1 + bits(n) bits, S >= 2^(W−1).
    3. One reciprocal per row, normalized: k = bits(S) − 1 + P, R = floor(2^k / S) in
       (2^(P−1), 2^P]: P + 1 bits.
    4. y_j = output stage of e_j · R (W + P + 1 bits) with shift k − out_fl: e_j / S on the
       grid 2^-out_fl, rounded in `rounding`, saturated to out_bits (1.0 saturates in
       fixed<8,7>, say).

    Needs out_fl in 0..W + P − 1 (so the shift is never negative) and W + 1 + bits(n) + P <= 62.
    With the defaults, 8-bit codes and n < 2^16 every register fits 32 bits (e_j · R is 32 bits
    unsigned). When the codes span at most 2^16 values, step 1 reads a table of int_exp over that
    span (the same values, computed once).
    """
    _check_exp_grid(fl_in, exp_fl)
    arr = _codes(codes, "codes")
    if arr.ndim == 0:
        raise RsimError("codes: softmax needs at least one axis, got a 0-d array")
    (ax,) = _axes(axis, arr.ndim, "axis")
    check_int(recip_bits, "recip_bits", 4, 30)
    check_int(out_fl, "out_fl", 0, exp_fl + recip_bits - 1)
    n = arr.shape[ax]
    _register(exp_fl + 1 + n.bit_length() + recip_bits, "recip_bits",
              f"the exponential sum over {n} values times its reciprocal")  # fmt: skip
    lo, hi, dtype, mode, u = _output_stage(out_bits, signed, rounding, rng, arr.shape)
    if arr.size == 0:
        return IntOutput(np.empty(arr.shape, dtype), out_fl, np.zeros(arr.shape, np.bool_))
    rows = _to_rows(arr, (ax,))
    k = _exp_constants(exp_fl, fl_in)
    span = int(arr.max()) - int(arr.min())
    use_lut = span < LUT_LIMIT
    lut = np.zeros(1, np.int64)
    if use_lut:
        lut = int_exp(np.arange(-span, 1), fl_in, exp_fl=exp_fl).codes
    out = np.empty(rows.shape, dtype)
    saturated = np.empty(rows.shape, np.bool_)
    with threads_for(32 * arr.size):
        _softmax_rows(rows, lut, -span, use_lut, k, recip_bits, out_fl, mode.code,
                      _to_rows(u, (ax,)), lo, hi, out, saturated)  # fmt: skip
    return IntOutput(_from_rows(out, arr.shape, (ax,)), out_fl,
                     _from_rows(saturated, arr.shape, (ax,)))


def int_layernorm(
    codes: np.ndarray,
    fl_in: int,
    gamma_codes: np.ndarray,
    gamma_fl: int,
    beta_codes: np.ndarray,
    beta_fl: int,
    axes: int | tuple[int, ...],
    out_bits: int,
    out_fl: int,
    *,
    eps: float = 1e-5,
    signed: bool = True,
    norm_fl: int = 12,
    recip_bits: int = 16,
    rounding: str | Rounding = "nearest_even",
    rng: np.random.Generator | None = None,
) -> IntOutput:
    """LayerNorm of codes x = q · 2^-fl_in over `axes`, scaled by gamma and shifted by beta, as
    codes of (out_bits, out_fl).

    gamma and beta are codes (fractional lengths gamma_fl, beta_fl) broadcasting to the shape of
    the normalized axes (in axis order). Per group of n codes (F = norm_fl, P = recip_bits):

    1. s1 = sum(q), s2 = sum(q²) (bits(n·max|q|) + 1 and bits(n·max|q|²) bits);
       c_j = n·q_j − s1 = n·(q_j − mean), exact: no rounded mean.
    2. E = round_half_even(eps · n² · 2^(2·fl_in)): eps in the units of D, computed exactly from
       eps's float64 value. D = n·s2 − s1² + E = n²·(var + eps) in code units, the widest
       register: bits((n·max|q|)² + E) bits, 34 for 8-bit codes and n = 768.
    3. D = 0 (a constant group, eps rounding to 0) gives y_j = 0. Otherwise
       g = max(0, floor((32 − bits(D)) / 2)), r = `int_sqrt`(D · 4^g) ≈ 2^g·sqrt(D) (16 bits when
       D < 2^32), k = bits(r) − 1 + P, R = floor(2^k / r) in (2^(P−1), 2^P].
    4. y_j = rshift(c_j · R, k − g − F) ≈ (x_j − mean)/sqrt(var + eps) · 2^F (c_j · R: bits(2·n·
       max|q|) + P + 1 bits; |y_j| <= sqrt(n − 1) · 2^F).
    5. With f = max(F + gamma_fl, beta_fl): acc_j = y_j·gamma_j · 2^(f − F − gamma_fl)
       + beta_j · 2^(f − beta_fl), exact; the output stage with shift f − out_fl.

    Needs norm_fl in 0..recip_bits, recip_bits in 4..30, f − out_fl <= 62, and every register
    above below 2^62 for the given codes (else RsimError).
    """
    arr = _codes(codes, "codes")
    check_int(fl_in, "fl_in", -64, 64)
    check_int(gamma_fl, "gamma_fl", -64, 64)
    check_int(beta_fl, "beta_fl", -64, 64)
    check_int(out_fl, "out_fl", -64, 64)
    check_int(recip_bits, "recip_bits", 4, 30)
    check_int(norm_fl, "norm_fl", 0, recip_bits)
    if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps >= 0):
        raise RsimError(f"eps: must be a finite non-negative number, got {eps!r}")
    if arr.ndim == 0:
        raise RsimError("codes: layer normalization needs at least one axis, got a 0-d array")
    ax = _axes(axes, arr.ndim, "axes")
    norm_shape = tuple(arr.shape[a] for a in ax)
    n = math.prod(norm_shape)
    gamma, beta = (_affine(v, what, norm_shape) for v, what in
                   ((gamma_codes, "gamma_codes"), (beta_codes, "beta_codes")))  # fmt: skip
    lo, hi, dtype, mode, u = _output_stage(out_bits, signed, rounding, rng, arr.shape)
    eps_code = round(Fraction(float(eps)) * n * n * Fraction(2) ** (2 * fl_in))
    f = max(norm_fl + gamma_fl, beta_fl)
    gamma_shift, beta_shift, out_shift = f - norm_fl - gamma_fl, f - beta_fl, f - out_fl
    if out_shift > 62:
        raise RsimError(f"out_fl: {out_fl} is {out_shift} bits coarser than the accumulator's "
                        f"max(norm_fl + gamma_fl, beta_fl) = {f}; at most 62 are allowed")
    spread = n * _magnitude(arr)
    _register((spread * spread + eps_code).bit_length(), "codes, eps",
              "n·sum(q²) − sum(q)² + eps (the variance register)")  # fmt: skip
    _register((2 * spread).bit_length() + recip_bits + 1, "codes",
              "the centred code times the reciprocal")  # fmt: skip
    y_bits = norm_fl + (n.bit_length() + 1) // 2 + 2
    acc_bits = max(y_bits + _magnitude(gamma).bit_length() + gamma_shift,
                   _magnitude(beta).bit_length() + beta_shift) + 1  # fmt: skip
    _register(acc_bits + max(0, -out_shift), "gamma_fl, beta_fl, out_fl",
              "the scaled and shifted accumulator")  # fmt: skip
    if arr.size == 0:
        return IntOutput(np.empty(arr.shape, dtype), out_fl, np.zeros(arr.shape, np.bool_))
    rows = _to_rows(arr, ax)
    out = np.empty(rows.shape, dtype)
    saturated = np.empty(rows.shape, np.bool_)
    with threads_for(16 * arr.size):
        _layernorm_rows(rows, gamma, beta, eps_code, norm_fl, recip_bits, gamma_shift, beta_shift,
                        out_shift, mode.code, _to_rows(u, ax), lo, hi, out, saturated)  # fmt: skip
    return IntOutput(_from_rows(out, arr.shape, ax), out_fl, _from_rows(saturated, arr.shape, ax))


def _affine(values: object, what: str, norm_shape: tuple[int, ...]) -> np.ndarray:
    """gamma or beta codes broadcast to the normalized shape, flattened to int64."""
    arr = _codes(values, what)
    try:
        return np.ascontiguousarray(np.broadcast_to(arr, norm_shape), dtype=np.int64).reshape(-1)
    except ValueError:
        raise RsimError(f"{what}: shape {arr.shape} does not broadcast to the normalized shape "
                        f"{norm_shape}") from None  # fmt: skip


def int_gelu(
    codes: np.ndarray,
    fl_in: int,
    out_bits: int,
    out_fl: int,
    *,
    signed: bool = True,
    erf_fl: int = 14,
    rounding: str | Rounding = "nearest_even",
    rng: np.random.Generator | None = None,
) -> IntOutput:
    """GELU(x) = x/2 · (1 + erf(x/√2)) of codes x = q · 2^-fl_in, as codes of (out_bits, out_fl).

    I-BERT's erf(v) ≈ sgn(v)·(a(min(|v|, −b) + b)² + 1), a = −0.2888, b = −1.769, evaluated at
    v = x/√2 with the 1/√2 folded into the constants (as I-BERT folds it into the scale):
    erf(x/√2) ≈ sgn(x)·((a/2)(min(|x|, −b√2) + b√2)² + 1). On the grid 2^-W (W = erf_fl):
    clip = K(−b·√2, W) (−b·√2 formed in float64), a2 = K(a/2, W). For each code q:

    1. v = min(align(|q|, W − fl_in), clip) − clip in [−clip, 0]: |x| + b√2 clipped, W + 3 bits
       signed; v² < 6.3 · 2^2W: 2W + 3 bits (31 for W = 14).
    2. erf_abs = rshift(a2 · rshift(v², W), W) + 2^W ≈ |erf(x/√2)| · 2^W (a2 · rshift(v², W):
       2W + 1 bits signed).
    3. h = 2^W + sgn(q)·erf_abs ≈ (1 + erf(x/√2)) · 2^W in [0, 2^(W+1)].
    4. The output stage of q · h (bits(max|q|) + W + 2 bits) with shift W + 1 + fl_in − out_fl.

    Needs erf_fl in 4..29, fl_in within 30 of erf_fl, and the output shift at most 62. With
    deterministic rounding and codes spanning fewer values than twice their count (and below
    2^16), the outputs are looked up in a table of these steps over the span (the same values).
    """
    check_int(erf_fl, "erf_fl", 4, 29)
    check_int(fl_in, "fl_in", erf_fl - 30, erf_fl + 30)
    check_int(out_fl, "out_fl", -64, 64)
    arr = _codes(codes, "codes")
    lo, hi, dtype, mode, u = _output_stage(out_bits, signed, rounding, rng, arr.shape)
    out_shift = erf_fl + 1 + fl_in - out_fl
    if out_shift > 62:
        raise RsimError(f"out_fl: the output is {out_shift} bits coarser than x·(1 + erf) on "
                        f"2^-(fl_in + erf_fl + 1); at most 62 are allowed")  # fmt: skip
    _register(_magnitude(arr).bit_length() + erf_fl + 2 + max(0, -out_shift), "out_fl",
              "x·(1 + erf) shifted to the output grid")  # fmt: skip
    clip = round(-ERF_POLY[1] * math.sqrt(2) * 2**erf_fl)
    a2 = round(ERF_POLY[0] / 2 * 2**erf_fl)

    def gelu(flat: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, saturated = np.empty(flat.size, dtype), np.empty(flat.size, np.bool_)
        with threads_for(8 * flat.size):
            _gelu_array(flat, erf_fl - fl_in, clip, a2, erf_fl, out_shift, mode.code, draws, lo,
                        hi, out, saturated)  # fmt: skip
        return out, saturated

    flat = arr.reshape(-1)
    first = int(arr.min()) if arr.size else 0
    span = int(arr.max()) - first if arr.size else 0
    if mode is Rounding.STOCHASTIC or span >= min(LUT_LIMIT, 2 * arr.size):
        out, saturated = gelu(flat, u.reshape(-1))
        return IntOutput(out.reshape(arr.shape), out_fl, saturated.reshape(arr.shape))
    table, table_saturated = gelu(np.arange(first, first + span + 1), u.reshape(-1))
    out, saturated = np.empty(arr.shape, dtype), np.empty(arr.shape, np.bool_)
    with threads_for(arr.size):
        _lookup(flat, first, table, table_saturated, out.reshape(-1), saturated.reshape(-1))
    return IntOutput(out, out_fl, saturated)
