"""Plain Python-int references of the kernels' semantics, written independently of kernels/.

They follow the issue's wording step by step (one addition at a time) and are slow on purpose;
tests keep shapes small.
"""

from __future__ import annotations

import numpy as np
import pytest


def register_add(value: int, addend: int, bits: int, overflow: str) -> tuple[int, bool]:
    """Add in a two's-complement register; returns (new value, whether it overflowed)."""
    exact = value + addend
    hi = 2 ** (bits - 1) - 1
    lo = -hi if overflow == "saturate_symmetric" else -(2 ** (bits - 1))
    if lo <= exact <= hi:
        return exact, False
    if overflow == "wrap":
        return (exact + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1), True
    return (hi if exact > hi else lo), True


def dot_with_plan(products, bias, *, acc_bits, acc_overflow="saturate", k_chunk=None,
                  partial_sum_bits=None, partial_sum_overflow="saturate", bias_mode="post"):  # fmt: skip
    """One output of the plan: returns (value, accumulator events, partial_sum events)."""
    products = [int(p) for p in products]
    acc_events = partial_sum_events = 0
    if k_chunk is None:
        chunks = [products]
    else:
        chunks = [products[i:i + k_chunk] for i in range(0, len(products), k_chunk)]
    partial_sum = 0
    acc = 0
    for index, chunk in enumerate(chunks):
        acc = int(bias) if (bias is not None and bias_mode == "preload" and index == 0) else 0
        for p in chunk:
            acc, event = register_add(acc, p, acc_bits, acc_overflow)
            acc_events += event
        if k_chunk is not None:
            partial_sum, event = register_add(partial_sum, acc, partial_sum_bits or acc_bits, partial_sum_overflow)
            partial_sum_events += event
    if bias is not None and bias_mode == "post":
        if k_chunk is None:
            acc, event = register_add(acc, int(bias), acc_bits, acc_overflow)
            acc_events += event
        else:
            partial_sum, event = register_add(partial_sum, int(bias), partial_sum_bits or acc_bits, partial_sum_overflow)
            partial_sum_events += event
    return (acc if k_chunk is None else partial_sum), acc_events, partial_sum_events


def gemm_reference(a, b, bias=None, **plan):
    """(out, acc events, partial_sum events) arrays of shape (M, N) for a (M, K) @ b (K, N)."""
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    out = np.zeros((m_dim, n_dim), np.int64)
    acc_ev = np.zeros_like(out)
    partial_sum_ev = np.zeros_like(out)
    for m in range(m_dim):
        for n in range(n_dim):
            products = [int(a[m, k]) * int(b[k, n]) for k in range(k_dim)]
            out[m, n], acc_ev[m, n], partial_sum_ev[m, n] = dot_with_plan(
                products, None if bias is None else bias[n], **plan
            )
    return out, acc_ev, partial_sum_ev


def conv2d_reference(x, w, *, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1,
                     pad_value=0, k_order="chw", bias=None, **plan):  # fmt: skip
    """Direct NCHW/OIHW convolution, each output reduced with `dot_with_plan`.

    K order "chw": input channel in group, kernel row, kernel column; "hwc": row, column, channel.
    """
    n_b, _n_c, h, wd = x.shape
    n_o, cg, kh, kw = w.shape
    og = n_o // groups
    top, left, bottom, right = pads
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n_b, n_o, oh, ow), np.int64)
    acc_ev, partial_sum_ev = np.zeros_like(out), np.zeros_like(out)

    def tap(n, c, iy, ix):
        if 0 <= iy < h and 0 <= ix < wd:
            return int(x[n, c, iy, ix])
        return pad_value

    for n in range(n_b):
        for o in range(n_o):
            g = o // og
            for y in range(oh):
                for xo in range(ow):
                    order = [(c, i, j) for c in range(cg) for i in range(kh) for j in range(kw)]
                    if k_order == "hwc":
                        order = [(c, i, j) for i in range(kh) for j in range(kw) for c in range(cg)]
                    products = [
                        tap(n, g * cg + c, y * stride[0] - top + i * dilation[0],
                            xo * stride[1] - left + j * dilation[1]) * int(w[o, c, i, j])
                        for c, i, j in order
                    ]  # fmt: skip
                    out[n, o, y, xo], acc_ev[n, o, y, xo], partial_sum_ev[n, o, y, xo] = dot_with_plan(
                        products, None if bias is None else bias[o], **plan
                    )
    return out, acc_ev, partial_sum_ev


def conv_transpose2d_reference(x, w, *, stride=(1, 1), pads=(0, 0, 0, 0), output_padding=(0, 0),
                               dilation=(1, 1), groups=1, bias=None, **plan):  # fmt: skip
    """ONNX ConvTranspose on codes: x (N, C, H, W), w (C, O/groups, kh, kw).

    Each output reduces all Cg·kh·kw kernel taps in the documented order: input channel in group
    ascending, kernel row descending, kernel column descending; a tap that lands between strided
    input positions or outside the input holds a zero product but keeps its slot in the chunks.
    """
    n_b, n_c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = n_c // groups
    n_o = og * groups
    top, left, bottom, right = pads
    oh = stride[0] * (h - 1) + output_padding[0] + (kh - 1) * dilation[0] + 1 - top - bottom
    ow = stride[1] * (wd - 1) + output_padding[1] + (kw - 1) * dilation[1] + 1 - left - right
    out = np.zeros((n_b, n_o, oh, ow), np.int64)
    acc_ev, partial_sum_ev = np.zeros_like(out), np.zeros_like(out)
    for n in range(n_b):
        for o in range(n_o):
            g, o_in = divmod(o, og)
            for y in range(oh):
                for xo in range(ow):
                    products = []
                    for c in range(cg):
                        for i in reversed(range(kh)):
                            for j in reversed(range(kw)):
                                ny, nx = y + top - i * dilation[0], xo + left - j * dilation[1]
                                iy, ix = ny // stride[0], nx // stride[1]
                                on_input = ny % stride[0] == 0 and nx % stride[1] == 0
                                if on_input and 0 <= iy < h and 0 <= ix < wd:
                                    ci = g * cg + c
                                    products.append(int(x[n, ci, iy, ix]) * int(w[ci, o_in, i, j]))
                                else:
                                    products.append(0)
                    out[n, o, y, xo], acc_ev[n, o, y, xo], partial_sum_ev[n, o, y, xo] = dot_with_plan(
                        products, None if bias is None else bias[o], **plan
                    )
    return out, acc_ev, partial_sum_ev


# -- the reference itself is checked against hand-worked cases and apytypes ---------------------


def test_register_add_saturates_wraps_and_flags_the_overflow():
    assert register_add(120, 10, 8, "saturate") == (127, True)
    assert register_add(120, 10, 8, "wrap") == (-126, True)
    assert register_add(-120, -10, 8, "saturate_symmetric") == (-127, True)
    assert register_add(-120, -8, 8, "saturate") == (-128, False)


def test_dot_with_plan_follows_chunks_partial_sum_and_bias_order():
    # acc 4 bits: chunk [7, 7] saturates to 7 once; chunk [-8] gives -8; partial_sum 5 bits: 7 + -8 = -1
    assert dot_with_plan([7, 7, -8], None, acc_bits=4, k_chunk=2, partial_sum_bits=5) == (-1, 1, 0)
    # preload 5 then +7 saturates (7), +7 saturates again, -8 -> -1
    assert dot_with_plan([7, 7, -8], 5, acc_bits=4, bias_mode="preload") == (-1, 2, 0)
    # post: 7+7 saturates, -8 -> -1, +5 -> 4
    assert dot_with_plan([7, 7, -8], 5, acc_bits=4) == (4, 1, 0)


def test_reference_without_overflow_is_the_apytypes_exact_matmul():
    apy = pytest.importorskip("apytypes")
    rng = np.random.default_rng(3)
    a = rng.integers(-(2**11), 2**11, (5, 37))
    b = rng.integers(-(2**9), 2**9, (37, 4))
    exact = apy.APyFixedArray.from_float(a, int_bits=12, frac_bits=0) @ apy.APyFixedArray.from_float(
        b, int_bits=10, frac_bits=0
    )
    out, acc_ev, _ = gemm_reference(a, b, acc_bits=64)
    assert np.array_equal(out, exact.to_numpy().astype(np.int64))
    assert not acc_ev.any()
