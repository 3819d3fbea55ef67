"""Integer 2-D convolution and transposed convolution as GEMMs with a modelled accumulator.

conv2d lowers to one GEMM per group: M = batch × output pixels, N = output channels of the
group, K = the kernel window × input channels of the group. The order of K is the order the
accumulator adds the products in, which matters once it saturates:

- `k_order="chw"` (default): input channel in group, then kernel row, then kernel column
  (the OIHW weight layout flattened; channel-outermost MAC arrays);
- `k_order="hwc"`: kernel row, kernel column, then input channel (NHWC datapaths).

conv_transpose2d (ONNX ConvTranspose / Caffe Deconvolution) is computed as the equivalent direct
convolution of the zero-inserted input with the flipped kernel, so each output reduces all
Cg·kh·kw taps in the order input channel ascending, kernel row descending, kernel column
descending; taps that fall between strided input positions or outside the input are zero
products that keep their slot in the chunks.

When no partial sum can leave the registers and every one stays within 2^24 (K·max|x|·max|w|,
e.g. int8 codes with K < 1024 into a 32-bit accumulator), the order is irrelevant and the
convolution runs as float32 BLAS on the codes (`kernels.fconv`, exact), without integer im2col.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from formats.errors import RsimError
from kernels.blockconv import screened_conv
from kernels.fconv import conv2d_float
from kernels.gemm import FLOAT32_EXACT, check_bias, gemm_batched, int_codes, max_abs
from kernels.plan import AccumulatorStats, ReductionPlan, integer_plan
from kernels.threads import threads_for

K_ORDERS = ("chw", "hwc")


def _pair(value: object, what: str, minimum: int) -> tuple[int, int]:
    items = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in items):
        raise RsimError(f"{what}: must be an int >= {minimum} or a pair (h, w) of them, got {value!r}")
    return int(items[0]), int(items[1])


def _pads(value: object, what: str = "padding") -> tuple[int, int, int, int]:
    """int, (h, w) or ONNX-style (top, left, bottom, right) -> (top, left, bottom, right)."""
    if isinstance(value, (int, np.integer)):
        items = (value,) * 4
    else:
        items = tuple(value)
        if len(items) == 2:
            items = items * 2
    if len(items) != 4 or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in items):
        raise RsimError(
            f"{what}: must be an int, (h, w) or (top, left, bottom, right) of ints >= 0, got {value!r}"
        )
    return tuple(int(v) for v in items)


@njit(cache=True, parallel=True, nogil=True)
def _im2col(x, groups, kh, kw, sh, sw, dh, dw, top, left, oh, ow, pad_value, hwc, cols):
    """cols[g, (n·oh + y)·ow + x, k] = the input tap k of output pixel (n, y, x) in group g."""
    n_b, n_c, h, wd = x.shape
    cg = n_c // groups
    for r in prange(n_b * oh):
        n = r // oh
        y = r % oh
        for xo in range(ow):
            m = r * ow + xo
            for g in range(groups):
                for c in range(cg):
                    for i in range(kh):
                        iy = y * sh - top + i * dh
                        for j in range(kw):
                            ix = xo * sw - left + j * dw
                            kk = ((i * kw + j) * cg + c) if hwc else ((c * kh + i) * kw + j)
                            if 0 <= iy < h and 0 <= ix < wd:
                                cols[g, m, kk] = x[n, g * cg + c, iy, ix]
                            else:
                                cols[g, m, kk] = pad_value


@dataclass(frozen=True)
class LoweredConv:
    """A convolution lowered to a batched GEMM: cols (G, M, K) @ weights (G, K, Og)."""

    cols: np.ndarray
    weights: np.ndarray
    batch: int
    out_hw: tuple[int, int]

    def to_nchw(self, t: np.ndarray) -> np.ndarray:
        """A (G, M, Og) GEMM result as (N, O, OH, OW)."""
        groups, _, og = t.shape
        oh, ow = self.out_hw
        t = t.reshape(groups, self.batch, oh, ow, og).transpose(1, 0, 4, 2, 3)
        return np.ascontiguousarray(t.reshape(self.batch, groups * og, oh, ow))


def conv_out_hw(x_shape, w_shape, stride, pads, dilation, groups, k_order) -> tuple[int, int]:
    """Validate a convolution's shapes and arguments and return its output size (OH, OW)."""
    n_b, n_c, h, wd = x_shape
    n_o, cg, kh, kw = w_shape
    if groups < 1 or n_c % groups or n_o % groups:
        raise RsimError(
            f"groups: {groups} must divide the input channels ({n_c}) and output channels ({n_o})"
        )
    if cg != n_c // groups:
        raise RsimError(
            f"w: shape {tuple(w_shape)} needs {n_c // groups} input channels per group "
            f"(x has {n_c} channels, groups={groups})"
        )
    if k_order not in K_ORDERS:
        raise RsimError(f"k_order: must be one of {', '.join(K_ORDERS)}, got {k_order!r}")
    top, left, bottom, right = pads
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh < 1 or ow < 1 or kh * kw * cg == 0:
        raise RsimError(
            f"x: input {h}x{wd} with padding {pads} is smaller than the dilated kernel "
            f"{kh}x{kw} (dilation {dilation})"
        )
    return oh, ow


def lower_conv(x, w, stride, pads, dilation, groups, pad_value, k_order) -> LoweredConv:
    """Validate shapes and build the im2col GEMM operands in the `k_order` reduction order.

    x and w are integer codes or float values alike; cols get x's dtype (widened to hold
    an integer pad_value).
    """
    n_b, n_c, h, wd = x.shape
    n_o, cg, kh, kw = w.shape
    oh, ow = conv_out_hw(x.shape, w.shape, stride, pads, dilation, groups, k_order)
    top, left = pads[:2]
    og = n_o // groups
    if x.dtype.kind == "f":
        dtype = x.dtype
    else:
        span = max(max_abs(x), abs(pad_value))
        dtype = next(dt for dt in (np.int8, np.int32, np.int64) if span <= np.iinfo(dt).max)
    cols = np.empty((groups, n_b * oh * ow, cg * kh * kw), dtype)
    with threads_for(cols.size):
        _im2col(np.ascontiguousarray(x, dtype=dtype), groups, kh, kw, stride[0], stride[1], dilation[0],
                dilation[1], top, left, oh, ow, pad_value, k_order == "hwc", cols)  # fmt: skip
    layout = (0, 2, 3, 4, 1) if k_order == "chw" else (0, 3, 4, 2, 1)
    wmat = w.reshape(groups, og, cg, kh, kw).transpose(layout).reshape(groups, cg * kh * kw, og)
    return LoweredConv(cols, np.ascontiguousarray(wmat), n_b, (oh, ow))


def _conv_gemm(x, w, stride, pads, dilation, groups, pad_value, k_order, plan, bias):
    """Validated conv2d core: returns out (N, O, OH, OW) and its stats."""
    out_hw = conv_out_hw(x.shape, w.shape, stride, pads, dilation, groups, k_order)
    fast = _float32_conv(x, w, stride, pads, dilation, groups, pad_value, plan, bias)
    if fast is not None:
        return fast
    if groups == 1 and k_order == "chw":
        screened = screened_conv(x, w, stride, pads, dilation, out_hw, pad_value, plan, bias)
        if screened is not None:
            return screened
    low = lower_conv(x, w, stride, pads, dilation, groups, pad_value, k_order)
    bias_g = None if bias is None else bias.reshape(groups, -1)
    out, acc_ev, partial_sum_ev, n_risk = gemm_batched(low.cols, low.weights, plan, bias_g)
    return low.to_nchw(out), AccumulatorStats(
        low.to_nchw(acc_ev), low.to_nchw(partial_sum_ev), 1, n_risk
    )


def _partial_sum_bound(x_max: int, w: np.ndarray) -> int:
    """K·max|x|·max|w|: no partial sum of any output, in any order, exceeds it in magnitude."""
    return w[0].size * x_max * max_abs(w)


def _float32_conv(x, w, stride, pads, dilation, groups, pad_value, plan, bias):
    """The convolution by float32 BLAS when that is provably exact and event-free, else None.

    With K taps per output, K·max|x|·max|w| bounds every partial sum of every output in any
    order. When that plus max|bias| stays inside the registers (`plan.safe_limit`), no
    overflow event can happen, so every output is its exact Σ x·w + bias whatever the plan;
    when it is <= 2^24 as well, every product and partial sum is an integer float32 holds
    exactly, so BLAS's result is that exact sum. The counters are all zero (a read-only view).
    """
    bound = _partial_sum_bound(max(max_abs(x), abs(pad_value)), w)
    bias_max = 0 if bias is None else max_abs(bias)
    if bound > FLOAT32_EXACT or bound + bias_max > plan.safe_limit:
        return None
    y = conv2d_float(x.astype(np.float32), w.astype(np.float32), stride, pads, dilation, groups,
                     float(pad_value))  # fmt: skip
    if bias is not None and bound + bias_max <= FLOAT32_EXACT:
        y += bias.astype(np.float32).reshape(1, -1, 1, 1)  # integers <= 2^24: exact in float32
        out = y.astype(np.int64)
    else:
        out = y.astype(np.int64)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
    return out, AccumulatorStats.event_free(out.shape)


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    plan: ReductionPlan,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    pad_value: int = 0,
    bias: np.ndarray | None = None,
    k_order: str = "chw",
    x_bits: int | None = None,
    w_bits: int | None = None,
) -> tuple[np.ndarray, AccumulatorStats]:
    """Convolution of NCHW codes x with OIHW codes w, accumulated as the integer `plan` says.

    Codes are signed with zero points already subtracted; padded taps read `pad_value`.
    `padding` is an int, (h, w) or (top, left, bottom, right) as ONNX `pads`. `bias` has one
    value per output channel. `x_bits`/`w_bits` optionally declare the codes' signed widths.
    Returns the int64 (N, O, OH, OW) result and its `AccumulatorStats` (channel axis 1).
    """
    plan = integer_plan(plan, "conv2d")
    x = int_codes(x, "x", x_bits, ndim=4)
    w = int_codes(w, "w", w_bits, ndim=4)
    if not isinstance(pad_value, (int, np.integer)):
        raise RsimError(f"pad_value: must be an integer code, got {pad_value!r}")
    if not isinstance(groups, (int, np.integer)):
        raise RsimError(f"groups: must be an integer, got {groups!r}")
    bias_arr = check_bias(bias, w.shape[0], plan)
    return _conv_gemm(
        x, w, _pair(stride, "stride", 1), _pads(padding), _pair(dilation, "dilation", 1),
        int(groups), int(pad_value), k_order, plan, bias_arr,
    )  # fmt: skip


def _reached(size: int, k: int, stride: int, dilation: int, begin: int, n_out: int) -> np.ndarray:
    """(size, k): the output position that kernel tap k of input position p feeds, or -1."""
    t = np.arange(size)[:, None] + begin - dilation * np.arange(k)[None, :]
    out = t // stride
    return np.where((t >= 0) & (t % stride == 0) & (out < n_out), out, -1)


@njit(cache=True, nogil=True)
def _scatter_changes(change, w_t, rows, cols, out):
    """out[n, rows[y, i], cols[x, j], g·Og:(g+1)·Og] += change[n, c, y, x] · w_t[g, c mod Cg,
    i, j, :] for every nonzero change and every tap that reads it (change, w_t and out share
    a dtype; flat unsigned offsets let the innermost loop over output channels vectorize)."""
    _, cg, kh, kw, og = w_t.shape
    n_b, n_c, h, w = change.shape
    oh, ow, n_o = out.shape[1], out.shape[2], out.shape[3]
    flat_out, flat_w = out.reshape(-1), w_t.reshape(-1)
    for n in range(n_b):
        for c in range(n_c):
            g = c // cg
            cc = c - g * cg
            for y in range(h):
                for x in range(w):
                    d = change[n, c, y, x]
                    if d == 0:
                        continue
                    for i in range(kh):
                        oy = rows[y, i]
                        if oy < 0:
                            continue
                        for j in range(kw):
                            ox = cols[x, j]
                            if ox < 0:
                                continue
                            at = np.uint64(((n * oh + oy) * ow + ox) * n_o + g * og)
                            taps = np.uint64((((g * cg + cc) * kh + i) * kw + j) * og)
                            for o in range(np.uint64(og)):
                                flat_out[at + o] += d * flat_w[taps + o]


def conv2d_changed(
    acc: np.ndarray,
    x_before: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    plan: ReductionPlan,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: np.ndarray | None = None,
    max_changed: float = 0.125,
) -> tuple[np.ndarray, AccumulatorStats] | None:
    """`conv2d(x, w, ...)` from `acc`, the result of the same convolution on `x_before`, when x
    changes at most `max_changed` of the codes; None when that does not hold or when either
    input could make a register overflow (then call `conv2d`).

    With every partial sum of both inputs provably inside the registers (K·max|x|·max|w| +
    max|bias| within the plan's limit) the convolution is exact integer arithmetic, hence
    linear: the result is acc plus the convolution of x − x_before, which costs a scatter over
    the changed codes only. The counters are all zero, as `conv2d`'s would be.
    """
    plan = integer_plan(plan, "conv2d_changed")
    x = int_codes(x, "x", ndim=4)
    x_before = int_codes(x_before, "x_before", ndim=4)
    w = int_codes(w, "w", ndim=4)
    strides, pads, dilations = _pair(stride, "stride", 1), _pads(padding), _pair(dilation, "dilation", 1)
    oh, ow = conv_out_hw(x.shape, w.shape, strides, pads, dilations, int(groups), "chw")
    expected = (x.shape[0], w.shape[0], oh, ow)
    if x_before.shape != x.shape or np.shape(acc) != expected:
        raise RsimError(f"x_before {x_before.shape}, x {x.shape} and acc {np.shape(acc)} must "
                        f"match: acc is the (N, O, OH, OW) = {expected} result on x_before")
    bias_arr = check_bias(bias, w.shape[0], plan)
    bound = _partial_sum_bound(max(max_abs(x), max_abs(x_before)), w)
    if bound + (0 if bias_arr is None else max_abs(bias_arr)) > plan.safe_limit:
        return None
    # every output's change, and each partial sum of it, is within twice that bound: int32
    # holds it unless the codes are wide
    dtype = np.int32 if 2 * bound < 2**31 else np.int64
    change = np.subtract(x, x_before, dtype=dtype)
    if np.count_nonzero(change) > max_changed * change.size:
        return None
    out_ch, cg, kh, kw = w.shape
    w_t = w.reshape(groups, out_ch // groups, cg, kh, kw).transpose(0, 2, 3, 4, 1)
    changes = np.zeros((x.shape[0], oh, ow, out_ch), dtype)
    rows = _reached(x.shape[2], kh, strides[0], dilations[0], pads[0], oh)
    cols = _reached(x.shape[3], kw, strides[1], dilations[1], pads[1], ow)
    _scatter_changes(change, np.ascontiguousarray(w_t, dtype), rows, cols, changes)
    out = np.asarray(acc, np.int64) + changes.transpose(0, 3, 1, 2)
    return out, AccumulatorStats.event_free(out.shape)


def conv_transpose2d(
    x: np.ndarray,
    w: np.ndarray,
    plan: ReductionPlan,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: np.ndarray | None = None,
    x_bits: int | None = None,
    w_bits: int | None = None,
) -> tuple[np.ndarray, AccumulatorStats]:
    """ONNX ConvTranspose (Caffe Deconvolution) of NCHW codes x with weights w (C, O/groups, kh, kw).

    Output size per axis: stride·(in − 1) + output_padding + dilation·(k − 1) + 1 − pads.
    Reduction order: see the module docstring. Returns (int64 (N, O, OH, OW), stats).
    """
    plan = integer_plan(plan, "conv_transpose2d")
    x = int_codes(x, "x", x_bits, ndim=4)
    w = int_codes(w, "w", w_bits, ndim=4)
    direct = as_direct_conv(x, w, stride, padding, output_padding, dilation, groups)
    bias_arr = check_bias(bias, direct.weights.shape[0], plan)
    return _conv_gemm(direct.x, direct.weights, (1, 1), direct.pads, direct.dilation,
                      direct.groups, 0, "chw", plan, bias_arr)  # fmt: skip


@dataclass(frozen=True)
class DirectConv:
    """A transposed convolution rewritten as a stride-1 direct convolution (OIHW weights)."""

    x: np.ndarray
    weights: np.ndarray
    pads: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int


def as_direct_conv(x, w, stride, padding, output_padding, dilation, groups) -> DirectConv:
    """Validate ConvTranspose arguments and build the equivalent direct convolution: the input
    with stride − 1 zeros inserted between samples, padded (or cropped) by dilation·(k − 1) −
    pads (+ output_padding at the end), and the kernel flipped with its channel axes swapped."""
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    oph, opw = _pair(output_padding, "output_padding", 0)
    top, left, bottom, right = _pads(padding)
    if not isinstance(groups, (int, np.integer)) or groups < 1 or x.shape[1] % groups:
        raise RsimError(f"groups: {groups!r} must be a positive divisor of the {x.shape[1]} input channels")
    if w.shape[0] != x.shape[1]:
        raise RsimError(f"w: shape {w.shape} needs {x.shape[1]} input channels first (x is {x.shape})")
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise RsimError(f"output_padding: {output_padding!r} must be smaller than stride or dilation")
    n_c, og, kh, kw = w.shape
    cg = n_c // groups
    n_b, _, h, wd = x.shape
    out_h = sh * (h - 1) + oph + dh * (kh - 1) + 1 - top - bottom
    out_w = sw * (wd - 1) + opw + dw * (kw - 1) + 1 - left - right
    if min(out_h, out_w) < 1:
        raise RsimError(f"padding: {padding!r} leaves no output ({out_h}x{out_w})")
    up = np.zeros((n_b, n_c, sh * (h - 1) + 1, sw * (wd - 1) + 1), x.dtype)
    up[:, :, ::sh, ::sw] = x
    edges = (dh * (kh - 1) - top, dw * (kw - 1) - left,
             dh * (kh - 1) - bottom + oph, dw * (kw - 1) - right + opw)  # fmt: skip
    crop = tuple(max(-e, 0) for e in edges)
    up = up[:, :, crop[0]:up.shape[2] - crop[2], crop[1]:up.shape[3] - crop[3]]
    flipped = w.reshape(groups, cg, og, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    flipped = np.ascontiguousarray(flipped.reshape(groups * og, cg, kh, kw))
    return DirectConv(up, flipped, tuple(max(e, 0) for e in edges), (dh, dw), int(groups))
