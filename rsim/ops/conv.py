"""2-D convolution and transposed convolution in float (im2col + BLAS, batched, grouped).

Attributes (normalised by the frontends): `kernel` (kh, kw), `strides` (sh, sw), `dilations`
(dh, dw), `pads` (top, left, bottom, right), `groups`; conv_transpose adds `output_padding`
(oh, ow). Params: `weight` (conv: O, C/groups, kh, kw; conv_transpose: C, O/groups, kh, kw, the
ONNX layouts) and optional `bias` (O,).
"""

from __future__ import annotations

import numpy as np

from rsim.ops.registry import OpSpec, register
from rsim.ops.windows import im2col, pad_nchw, tap, window_out_size


def conv_out_hw(in_shape, attrs) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    return (
        window_out_size(in_shape[2], kh, sh, dh, top, bottom),
        window_out_size(in_shape[3], kw, sw, dw, left, right),
    )


def _conv_shape(shapes, attrs, params):
    (x,) = shapes
    if len(x) != 4:
        raise ValueError(f"conv expects an NCHW input, got shape {x}")
    out_ch, in_per_group = params["weight"].shape[:2]
    if x[1] != in_per_group * attrs["groups"]:
        raise ValueError(
            f"conv input has {x[1]} channels; the weight expects {in_per_group * attrs['groups']}"
        )
    return (x[0], out_ch) + conv_out_hw(x, attrs)


def _conv_macs(shapes, out, attrs, params):
    return int(np.prod(out)) * int(np.prod(params["weight"].shape[1:]))


def _conv_forward(arrays, attrs, params):
    """Per group, GEMMs over the whole batch (see `_gemm_im2col`, `_gemm_row_shifted`);
    depthwise convs take a multiply-add per kernel tap instead."""
    (x,) = arrays
    w = params["weight"]
    groups = attrs["groups"]
    out_ch, in_per_group, kh, kw = w.shape
    out_hw = conv_out_hw(x.shape, attrs)
    xp = pad_nchw(x, attrs["pads"])
    if in_per_group == 1 and groups > 1:
        y = _depthwise(xp, w, attrs, out_hw, groups)
    else:
        row_shifted = attrs["strides"][0] == 1 and kh > 1 and in_per_group * kw >= 16
        gemm = _gemm_row_shifted if row_shifted else _gemm_im2col
        per_group = out_ch // groups
        y = np.empty((x.shape[0], out_ch) + out_hw, dtype=x.dtype)
        for g in range(groups):
            y[:, g * per_group : (g + 1) * per_group] = gemm(
                xp[:, g * in_per_group : (g + 1) * in_per_group],
                w[g * per_group : (g + 1) * per_group],
                attrs,
                out_hw,
            )
    if "bias" in params:
        y += params["bias"].reshape(1, -1, 1, 1)
    return y


def _gemm_im2col(xp, w, attrs, out_hw):
    """weight (O, C*kh*kw) times all patches (C*kh*kw, N*Ho*Wo): one GEMM for the batch."""
    n = xp.shape[0]
    out_ch, in_ch, kh, kw = w.shape
    ho, wo = out_hw
    if (kh, kw) == (1, 1) and attrs["strides"] == (1, 1):
        cols = xp.transpose(1, 0, 2, 3).reshape(in_ch, n * ho * wo)
    else:
        cols = im2col(xp, (kh, kw), attrs["strides"], attrs["dilations"], out_hw)
        cols = cols.reshape(in_ch * kh * kw, n * ho * wo)
    y = np.matmul(w.reshape(out_ch, -1), cols)
    return y.reshape(out_ch, n, ho, wo).transpose(1, 0, 2, 3)


def _gemm_row_shifted(xp, w, attrs, out_hw):
    """For vertical stride 1: gather only the kw horizontal taps, in (C, kw, H, N, Wo) order, so
    the patches of kernel row i are a strided view of it (rows i*dh .. i*dh+Ho); kh GEMMs of
    depth C*kw then accumulate. kw/(kh*kw) of im2col's copying, same arithmetic."""
    n, in_ch, hp, _ = xp.shape
    out_ch, _, kh, kw = w.shape
    ho, wo = out_hw
    sw, (dh, dw) = attrs["strides"][1], attrs["dilations"]
    rows = np.empty((in_ch, kw, hp, n, wo), dtype=xp.dtype)
    by_row = xp.transpose(1, 2, 0, 3)
    for j in range(kw):
        rows[:, j] = by_row[:, :, :, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
    y = None
    for i in range(kh):
        w_row = np.ascontiguousarray(w[:, :, i, :]).reshape(out_ch, in_ch * kw)
        part = np.matmul(w_row, rows[:, :, i * dh : i * dh + ho].reshape(in_ch * kw, ho * n * wo))
        y = part if y is None else np.add(y, part, out=y)
    return y.reshape(out_ch, ho, n, wo).transpose(2, 0, 1, 3)


def _depthwise(xp, w, attrs, out_hw, groups):
    """Each output channel sees one input channel: a multiply-add per kernel tap beats a GEMM."""
    out_ch, _, kh, kw = w.shape
    mult = out_ch // groups
    src = np.repeat(xp, mult, axis=1) if mult > 1 else xp
    y = np.zeros((xp.shape[0], out_ch) + tuple(out_hw), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            y += tap(src, i, j, attrs["strides"], attrs["dilations"], out_hw) * w[
                :, 0, i, j
            ].reshape(1, -1, 1, 1)
    return y


def conv_transpose_out_hw(in_shape, attrs, params) -> tuple[int, int]:
    kh, kw = params["weight"].shape[2:]
    (sh, sw), (dh, dw), (oph, opw) = attrs["strides"], attrs["dilations"], attrs["output_padding"]
    top, left, bottom, right = attrs["pads"]
    return (
        sh * (in_shape[2] - 1) + oph + dh * (kh - 1) + 1 - top - bottom,
        sw * (in_shape[3] - 1) + opw + dw * (kw - 1) + 1 - left - right,
    )


def _conv_transpose_shape(shapes, attrs, params):
    (x,) = shapes
    if len(x) != 4 or x[1] != params["weight"].shape[0]:
        raise ValueError(
            f"conv_transpose expects NCHW input with {params['weight'].shape[0]} "
            f"channels, got shape {x}"
        )
    return (x[0], params["weight"].shape[1] * attrs["groups"]) + conv_transpose_out_hw(
        x, attrs, params
    )


def _conv_transpose_macs(shapes, out, attrs, params):
    return int(np.prod(shapes[0])) * int(np.prod(params["weight"].shape[1:]))


def _conv_transpose_forward(arrays, attrs, params):
    """Scatter form: every input pixel times the kernel (one GEMM per group over the whole
    batch), then each kernel tap is added into the strided output positions it reaches
    (col2im), then the pads are cropped."""
    (x,) = arrays
    w = params["weight"]
    groups = attrs["groups"]
    n, in_ch, h, wd = x.shape
    _, out_per_group, kh, kw = w.shape
    out_ch = out_per_group * groups
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left, _, _ = attrs["pads"]
    ho, wo = conv_transpose_out_hw(x.shape, attrs, params)
    xg = x.transpose(1, 0, 2, 3).reshape(groups, in_ch // groups, n * h * wd)
    wg = w.reshape(groups, in_ch // groups, out_per_group * kh * kw)
    cols = np.empty((groups, out_per_group * kh * kw, n * h * wd), dtype=x.dtype)
    for g in range(groups):
        np.matmul(wg[g].T, xg[g], out=cols[g])
    cols = cols.reshape(out_ch, kh, kw, n, h, wd)
    full_h = max(sh * (h - 1) + dh * (kh - 1) + 1, top + ho)
    full_w = max(sw * (wd - 1) + dw * (kw - 1) + 1, left + wo)
    full = np.zeros((n, out_ch, full_h, full_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            full[
                :,
                :,
                i * dh : i * dh + sh * (h - 1) + 1 : sh,
                j * dw : j * dw + sw * (wd - 1) + 1 : sw,
            ] += cols[:, i, j].transpose(1, 0, 2, 3)
    y = np.ascontiguousarray(full[:, :, top : top + ho, left : left + wo])
    if "bias" in params:
        y += params["bias"].reshape(1, -1, 1, 1)
    return y


register(OpSpec("conv", _conv_forward, _conv_shape, _conv_macs))
register(
    OpSpec("conv_transpose", _conv_transpose_forward, _conv_transpose_shape, _conv_transpose_macs)
)
