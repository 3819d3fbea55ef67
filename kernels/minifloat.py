"""Minifloat MAC datapaths: GEMM and convolution with a floating-point accumulator that rounds
after every addition, following the same reduction plan as the integer kernels.

Semantics of one output Σ_k a[k]·b[k], for a float `kernels.ReductionPlan`:
- each product is exact, or rounded to the plan's `product` format when one is given;
- K is cut into chunks of `k_chunk` (None = one chunk) in ascending k; each chunk starts at 0
  (the first at the bias with bias_mode="preload") and rounds to the accumulator's format after
  every addition;
- with a `k_chunk`, chunk results are added in order into a partial sum rounded to the partial
  sum's format after every addition;
- bias_mode="post" adds the bias last, rounded in the partial-sum (or accumulator) format.
Rounding is the plan's `rounding` (deterministic modes), overflow is each format's own rule.

Exactness: products of two formats whose precisions add up to <= 53 bits are exact in float64.
A sum is computed in float64; when it may be inexact there (operands far apart), TwoSum gives
the error and the float64 result is moved to round-to-odd, which rounds correctly again to any
format of <= 51 significant bits. Each value is then rounded once by `formats.float_nb.round_float`.

Speed: with nearest-even, sums exact in float64 and formats with subnormals (e.g. e4m3 products
into fp16), a whole row of N accumulators is rounded per k step by the branch-free
`round_nearest_even_in_range`, a loop that vectorises; a step is redone with `round_float` only
when a product or sum overflows (or is inf/NaN), so results are the same bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from formats.errors import RsimError
from formats.float_nb import (magnitude_bits, nearest_even_limit, nearest_even_shortcut_applies,
                              round_float, round_nearest_even_in_range)
from formats.fixed import FixedPoint
from formats.minifloat import Minifloat, RistrettoMinifloat
from formats.pow2 import PowerOfTwo
from formats.modes import Rounding
from formats.rounding_nb import NEAREST_EVEN, two_sum
from kernels.conv import _pads, _pair, as_direct_conv, lower_conv
from kernels.plan import ReductionPlan, float_plan
from kernels.threads import blas_threads_for, threads_for

ROUNDING_COST = 16  # a rounded addition costs about this many simple operations

_FLOAT64_PRECISION = 53
_ROUND_TO_ODD_MAX_MAN_BITS = 50


# formats' correctly rounding scalar function, compiled inline into the MAC loops below (the same
# code; inlining it is what keeps a rounding per addition affordable)
_round_float = njit(inline="always")(round_float.py_func)  # only ever inlined: no cache entry


@njit(cache=True, inline="always")
def rounded_sum(x, y, params, rounding, maybe_inexact):
    """x + y correctly rounded to the format of `params` (see `Minifloat.nb_params`)."""
    s = x + y
    if maybe_inexact and s - s == 0.0:
        s, err = two_sum(x, y)
        if err != 0.0 and (np.int64(math.frexp(s)[0] * 9007199254740992.0) & 1) == 0:
            s = np.nextafter(s, np.inf if err > 0.0 else -np.inf)  # round-to-odd
    return _round_float(s, params[0], params[1], params[2], params[3], params[4], params[5],
                        params[6], rounding, 0.0)  # fmt: skip


@njit(cache=True, inline="always")
def _accumulate_chunk(a, b, g, m, k0, k1, acc, has_product, prod_params, acc_params, acc_inexact,
                      rounding):  # fmt: skip
    """acc[n] += a[g, m, k]·b[g, k, n] for k in k0..k1-1, rounding as the plan says."""
    for k in range(k0, k1):
        av = a[g, m, k]
        for n in range(acc.shape[0]):
            p = av * b[g, k, n]
            if has_product:
                p = _round_float(p, prod_params[0], prod_params[1], prod_params[2], prod_params[3],
                                 prod_params[4], prod_params[5], prod_params[6], rounding, 0.0)  # fmt: skip
            acc[n] = rounded_sum(acc[n], p, acc_params, rounding, acc_inexact)


@njit(cache=True, inline="always")
def _accumulate_chunk_nearest_even(a, b, g, m, k0, k1, acc, previous, has_product, prod_params,
                                   acc_params):  # fmt: skip
    """`_accumulate_chunk` for the common case (nearest-even, exact float64 sums, formats with
    subnormals): each k step rounds the whole row with the branch-free
    `round_nearest_even_in_range` (a loop that vectorises), keeping the accumulator's previous
    values, and redoes the step with the general `round_float` only when a product or a sum is
    beyond its format's `nearest_even_limit` (overflow, inf or NaN)."""
    man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero = acc_params
    p_man_bits, p_min_exp, p_max_exp, p_max_value, p_subnormals, p_overflow_rule, p_signed_zero = prod_params
    limit = nearest_even_limit(man_bits, max_value)
    p_limit = nearest_even_limit(p_man_bits, p_max_value)
    for k in range(k0, k1):
        av = a[g, m, k]
        peak = 0  # the largest magnitudes as float64 bits (integer maxima, so they vectorise)
        p_peak = 0
        for n in range(acc.shape[0]):
            p = av * b[g, k, n]
            if has_product:
                p_peak = max(p_peak, magnitude_bits(p))
                p = round_nearest_even_in_range(p, p_man_bits, p_min_exp, p_signed_zero)
            s = acc[n] + p
            previous[n] = acc[n]
            peak = max(peak, magnitude_bits(s))
            acc[n] = round_nearest_even_in_range(s, man_bits, min_exp, signed_zero)
        if peak > limit or p_peak > p_limit:
            for n in range(acc.shape[0]):
                p = av * b[g, k, n]
                if has_product:
                    p = _round_float(p, p_man_bits, p_min_exp, p_max_exp, p_max_value, p_subnormals,
                                     p_overflow_rule, p_signed_zero, NEAREST_EVEN, 0.0)  # fmt: skip
                acc[n] = _round_float(previous[n] + p, man_bits, min_exp, max_exp, max_value,
                                      subnormals, overflow_rule, signed_zero, NEAREST_EVEN, 0.0)  # fmt: skip


@njit(cache=True)
def minifloat_row(a, b, g, m, bias, bias_post, bias_preload, k_chunk, has_product, prod_params,
                  acc_params, acc_inexact, row_shortcut, has_partial_sum, partial_sum_params,
                  partial_sum_inexact, rounding, out):  # fmt: skip
    """One output row (g, m, :) of the minifloat plan."""
    n_k = a.shape[2]
    n_n = b.shape[2]
    acc = np.zeros(n_n)
    previous = np.zeros(n_n)
    partial_sum = np.zeros(n_n)
    for k0 in range(0, n_k, k_chunk):
        for n in range(n_n):
            acc[n] = bias[g, n] if (bias_preload and k0 == 0) else 0.0
        k1 = min(k0 + k_chunk, n_k)
        if row_shortcut and has_product:  # has_product as a constant in each loop
            _accumulate_chunk_nearest_even(a, b, g, m, k0, k1, acc, previous, True, prod_params,
                                           acc_params)  # fmt: skip
        elif row_shortcut:
            _accumulate_chunk_nearest_even(a, b, g, m, k0, k1, acc, previous, False, prod_params,
                                           acc_params)  # fmt: skip
        else:
            _accumulate_chunk(a, b, g, m, k0, k1, acc, has_product, prod_params, acc_params,
                              acc_inexact, rounding)  # fmt: skip
        if has_partial_sum:
            for n in range(n_n):
                partial_sum[n] = rounded_sum(partial_sum[n], acc[n], partial_sum_params, rounding,
                                             partial_sum_inexact)
    for n in range(n_n):
        value = partial_sum[n] if has_partial_sum else acc[n]
        if bias_post:
            params = partial_sum_params if has_partial_sum else acc_params
            value = rounded_sum(value, bias[g, n], params, rounding, True)
        out[g, m, n] = value


@njit(cache=True, parallel=True, nogil=True)
def _minifloat_rows(a, b, bias, bias_post, bias_preload, k_chunk, has_product, prod_params,
                    acc_params, acc_inexact, row_shortcut, has_partial_sum, partial_sum_params,
                    partial_sum_inexact, rounding, out):  # fmt: skip
    n_g, n_m, _ = a.shape
    for r in prange(n_g * n_m):
        minifloat_row(a, b, r // n_m, r % n_m, bias, bias_post, bias_preload, k_chunk, has_product,
                      prod_params, acc_params, acc_inexact, row_shortcut, has_partial_sum,
                      partial_sum_params, partial_sum_inexact, rounding, out)  # fmt: skip


OperandFormat = Minifloat | FixedPoint | PowerOfTwo | RistrettoMinifloat
OPERAND_FORMATS = (Minifloat, FixedPoint, PowerOfTwo, RistrettoMinifloat)


def _quantum_exp(fmt: OperandFormat) -> int:
    """log2 of the format's finest step (a minifloat's smallest subnormal spacing)."""
    if isinstance(fmt, FixedPoint):
        return -fmt.fl
    if isinstance(fmt, PowerOfTwo):
        return fmt.exp_min
    if isinstance(fmt, RistrettoMinifloat):
        return -fmt.bias - fmt.man_bits  # no subnormals: the smallest normal's step
    return fmt.min_exp - fmt.man_bits


def _max_exp(fmt: OperandFormat) -> int:
    """Every value of the format is below 2^this in magnitude."""
    if isinstance(fmt, FixedPoint):
        return fmt.bits - fmt.fl  # |code| <= 2^(bits-1), so |value| < 2^(bits-fl)
    if isinstance(fmt, PowerOfTwo):
        return fmt.exp_max + 1
    if isinstance(fmt, RistrettoMinifloat):  # a mantissa carry can reach 2^(top exponent + 1)
        return math.frexp(fmt.max)[1] + 1
    return math.frexp(fmt.max)[1]


def _precision(fmt: OperandFormat) -> int:
    """Significant bits a value of the format can need."""
    if isinstance(fmt, FixedPoint):
        return fmt.bits
    return 1 if isinstance(fmt, PowerOfTwo) else fmt.man_bits + 1


def _sum_may_be_inexact(register: Minifloat, addend_quantum: int, addend_max_exp: int) -> bool:
    """Whether register + addend can need more than 53 bits (both are multiples of the finer
    quantum and below 2^max exponent, so the sum needs at most max − quantum + 1 bits)."""
    quantum = min(_quantum_exp(register), addend_quantum)
    top = max(_max_exp(register), addend_max_exp) + 1
    return top - quantum > _FLOAT64_PRECISION


def _shortcut_covers(fmt: Minifloat) -> bool:
    """Whether `round_nearest_even_in_range` rounds every in-range value to fmt."""
    return fmt.subnormals and nearest_even_shortcut_applies.py_func(fmt.man_bits, fmt.max_exp)


def _finest_quantum_exp(values: np.ndarray) -> int:
    """log2 of the largest power of two every value is a multiple of (nonzero values only)."""
    nonzero = np.abs(values[values != 0])
    mantissa, exponent = np.frexp(nonzero)
    integer = np.ldexp(mantissa, 53).astype(np.int64)  # odd part times a power of two, exact
    trailing = np.log2((integer & -integer).astype(np.float64)).astype(np.int64)
    return int((exponent - 53 + trailing).min())


def _value_bits(values: np.ndarray) -> int:
    """The most significant bits any one of the values has (a product of two values is exact
    in float64 when theirs add up to at most 53)."""
    nonzero = values[(values != 0) & np.isfinite(values)]
    if not nonzero.size:
        return 0
    integer = np.ldexp(np.frexp(np.abs(nonzero))[0], 53).astype(np.int64)
    trailing = np.log2((integer & -integer).astype(np.float64)).astype(np.int64)
    return int(53 - trailing.min())


def _values(x: object, fmt: OperandFormat, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not isinstance(fmt, OPERAND_FORMATS):
        raise RsimError(f"{what}_format: must be a minifloat, fixed-point or power-of-two format, "
                        f"got {fmt!r}")
    if not arr.size:
        return arr
    quantized = fmt.quantize(arr, overflow=None)
    # the plain comparison first: equal_nan makes numpy ~20x slower, and only NaNs need it
    if not np.array_equal(quantized, arr) and not np.array_equal(quantized, arr, equal_nan=True):
        raise RsimError(f"{what}: values are not all representable in {fmt}")
    return arr


class _FloatReduction:
    """A float `ReductionPlan` for operands of two formats (minifloat; or fixed-point and
    power-of-two values accumulated in float registers, as Ristretto's float GEMM does), with the
    scalar parameters the row kernel needs."""

    def __init__(self, plan: ReductionPlan, a_format: OperandFormat,
                 b_format: OperandFormat,
                 kernel: str, a_name: str = "a", b_name: str = "b"):  # fmt: skip
        plan = float_plan(plan, kernel)
        for fmt, what in ((a_format, a_name), (b_format, b_name)):
            if not isinstance(fmt, OPERAND_FORMATS):
                raise RsimError(f"{what}_format: must be a minifloat, fixed-point or power-of-two "
                                f"format, got {fmt!r}")
        # formats whose values may need more than 53 bits together (a 32-bit fixed point
        # times float32) are checked on the actual values in `run`
        self.check_products = _precision(a_format) + _precision(b_format) > _FLOAT64_PRECISION
        self.operand_names = (a_name, b_name, a_format, b_format)
        self.rounding = plan.rounding
        self.blas_order = plan.accumulator.order == "blas"
        if self.blas_order and plan.partial_sum is not None:
            raise RsimError(f"{kernel}: an accumulator summed in BLAS order (Caffe's float GEMM) "
                            "has no partial-sum step; use an output-stationary array")
        self.acc = plan.accumulator.format
        self.product = plan.product
        self.partial_sum = None if plan.partial_sum is None else plan.partial_sum.format
        self.k_chunk = plan.k_chunk
        self.bias_mode = plan.bias_mode
        if self.product is not None:
            p_quantum, p_max = _quantum_exp(self.product), _max_exp(self.product)
        else:
            p_quantum = _quantum_exp(a_format) + _quantum_exp(b_format)
            p_max = _max_exp(a_format) + _max_exp(b_format)
        self.product_quantum = p_quantum
        self.acc_inexact = _sum_may_be_inexact(self.acc, p_quantum, p_max)
        # nearest-even, exact float64 sums, formats the shortcut covers: the vectorised row loop
        self.row_shortcut = (self.rounding is Rounding.NEAREST_EVEN and not self.acc_inexact
                             and all(_shortcut_covers(fmt) for fmt in (self.acc, self.product) if fmt))
        self.partial_sum_inexact = self.partial_sum is not None
        for fmt, what in ((self.acc, "accumulator"), (self.partial_sum, "partial_sum")):
            if fmt is not None and fmt.man_bits > _ROUND_TO_ODD_MAX_MAN_BITS:
                raise RsimError(f"{what}: at most {_ROUND_TO_ODD_MAX_MAN_BITS} mantissa bits")

    @property
    def bias_format(self) -> Minifloat:
        if self.bias_mode == "post" and self.partial_sum is not None:
            return self.partial_sum
        return self.acc

    def _never_rounds(self, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> bool:
        """Whether no addition of this reduction can round or overflow, in any order: every
        partial sum is a multiple of the finest quantum among the products (exact ones) and the
        bias values, and bounded by K·max|a|·max|b| + max|bias|; when that bound stays below
        2^precision quanta of every register, within its range, and the quantum is on its grid,
        every partial sum is a value of the register, so the result is the exact sum."""
        if self.product is not None or not a.size or not b.size:
            return False
        quantum = self.product_quantum
        bias_max = 0.0
        if bias is not None and np.any(bias):
            quantum = min(quantum, _finest_quantum_exp(bias))
            bias_max = float(np.abs(bias).max())
        bound = a.shape[2] * float(np.abs(a).max()) * float(np.abs(b).max()) + bias_max
        if not math.isfinite(bound):
            return False
        for fmt in (self.acc, self.partial_sum):
            if fmt is None:
                continue
            finest = _quantum_exp(fmt) if fmt.subnormals else fmt.min_exp
            if not (bound <= fmt.max and quantum >= finest
                    and bound < math.ldexp(1.0, quantum + fmt.man_bits + 1)):
                return False
        return True

    def run(self, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """(G, M, K) @ (G, K, N) values with bias (G, N) or None -> (G, M, N) float64."""
        if self.blas_order:  # Caffe's arithmetic: float32 blobs into sgemm, bias added after
            with blas_threads_for(a.size * b.shape[2]):
                out = np.matmul(a.astype(np.float32), b.astype(np.float32))
            if bias is not None:
                out += bias.astype(np.float32)[:, None, :]
            return out.astype(np.float64)
        if self.check_products and _value_bits(a) + _value_bits(b) > _FLOAT64_PRECISION:
            a_name, b_name, a_format, b_format = self.operand_names
            raise RsimError(f"{a_name}, {b_name}: values of {a_format} and {b_format} need "
                            f"{_value_bits(a)} + {_value_bits(b)} significant bits, over 53, so "
                            "their products would not be exact in float64")
        if self._never_rounds(a, b, bias):  # exact sums: one float64 BLAS GEMM, exact too
            with blas_threads_for(a.size * b.shape[2]):
                out = np.matmul(a, b)
            return out if bias is None else out + bias[:, None, :]
        n_g, n_m, n_k = a.shape
        out = np.empty((n_g, n_m, b.shape[2]))
        product = self.product or self.acc
        partial_sum = self.partial_sum or self.acc
        with threads_for(ROUNDING_COST * a.size * b.shape[2]):
            _minifloat_rows(
                np.ascontiguousarray(a), np.ascontiguousarray(b),
                np.zeros((n_g, b.shape[2])) if bias is None else bias,
                bias is not None and self.bias_mode == "post",
                bias is not None and self.bias_mode == "preload",
                n_k if self.k_chunk is None else int(self.k_chunk),
                self.product is not None, product.nb_params(), self.acc.nb_params(), self.acc_inexact,
                self.row_shortcut, self.partial_sum is not None, partial_sum.nb_params(),
                self.partial_sum_inexact, self.rounding.code, out,
            )  # fmt: skip
        return out


def _bias_values(bias: object, n: int, plan: _FloatReduction) -> np.ndarray | None:
    if bias is None:
        return None
    arr = _values(bias, plan.bias_format, "bias")
    if arr.shape != (n,):
        raise RsimError(f"bias: must have one value per output channel ({n}), got shape {arr.shape}")
    return arr


def minifloat_gemm(
    a: np.ndarray,
    b: np.ndarray,
    plan: ReductionPlan,
    *,
    a_format: OperandFormat,
    b_format: OperandFormat,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """out[m, n] = Σ_k a[m, k]·b[k, n] on minifloat values, reduced as the float `plan` says
    (`kernels.plan`; the module docstring gives the float semantics).

    a and b are float values on a_format / b_format's grids (e.g. `fmt.decode(codes)`); the
    result is float64 values of the partial-sum (or accumulator) format.
    """
    run = _FloatReduction(plan, a_format, b_format, "minifloat_gemm")
    av = _values(a, a_format, "a")
    bv = _values(b, b_format, "b")
    if av.ndim != 2 or bv.ndim != 2 or av.shape[1] != bv.shape[0] or av.shape[1] == 0:
        raise RsimError(f"b: shape {bv.shape} does not match a {av.shape} (need (M, K) @ (K, N), K >= 1)")
    bias_v = _bias_values(bias, bv.shape[1], run)
    return run.run(av[None], bv[None], None if bias_v is None else bias_v[None])[0]


def minifloat_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    plan: ReductionPlan,
    *,
    x_format: OperandFormat,
    w_format: OperandFormat,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: np.ndarray | None = None,
    k_order: str = "chw",
) -> np.ndarray:
    """NCHW × OIHW convolution on minifloat values, reduced as the float `plan` says in
    `k_order` as in `kernels.conv`; padded taps are 0. Returns float64 (N, O, OH, OW)."""
    run = _FloatReduction(plan, x_format, w_format, "minifloat_conv2d", "x", "w")
    xv = _values(x, x_format, "x")
    wv = _values(w, w_format, "w")
    if xv.ndim != 4 or wv.ndim != 4:
        raise RsimError(f"x, w: must be 4-D (NCHW, OIHW), got {xv.shape} and {wv.shape}")
    if not isinstance(groups, (int, np.integer)):
        raise RsimError(f"groups: must be an integer, got {groups!r}")
    low = lower_conv(xv, wv, _pair(stride, "stride", 1), _pads(padding), _pair(dilation, "dilation", 1),
                     int(groups), 0.0, k_order)  # fmt: skip
    bias_v = _bias_values(bias, wv.shape[0], run)
    out = run.run(low.cols, low.weights, None if bias_v is None else bias_v.reshape(int(groups), -1))
    return low.to_nchw(out)


def minifloat_conv_transpose2d(
    x: np.ndarray,
    w: np.ndarray,
    plan: ReductionPlan,
    *,
    x_format: OperandFormat,
    w_format: OperandFormat,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """ONNX ConvTranspose on minifloat values, x (N, C, H, W) and w (C, O/groups, kh, kw),
    reduced as the float `plan` says in the order of `kernels.conv_transpose2d`. Returns
    float64 (N, O, OH, OW)."""
    run = _FloatReduction(plan, x_format, w_format, "minifloat_conv_transpose2d", "x", "w")
    xv = _values(x, x_format, "x")
    wv = _values(w, w_format, "w")
    if xv.ndim != 4 or wv.ndim != 4:
        raise RsimError(f"x, w: must be 4-D (NCHW, C x O/groups x kh x kw), got {xv.shape} and {wv.shape}")
    direct = as_direct_conv(xv, wv, stride, padding, output_padding, dilation, groups)
    low = lower_conv(direct.x, direct.weights, (1, 1), direct.pads, direct.dilation, direct.groups,
                     0.0, "chw")  # fmt: skip
    bias_v = _bias_values(bias, direct.weights.shape[0], run)
    out = run.run(low.cols, low.weights, None if bias_v is None else bias_v.reshape(direct.groups, -1))
    return low.to_nchw(out)
