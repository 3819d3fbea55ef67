"""2-D convolution and transposed convolution in float (im2col + BLAS, batched, grouped).

Attributes (normalised by the frontends): `kernel` (kh, kw), `strides` (sh, sw), `dilations`
(dh, dw), `pads` (top, left, bottom, right), `groups`; conv_transpose adds `output_padding`
(oh, ow). Params: `weight` (conv: O, C/groups, kh, kw; conv_transpose: C, O/groups, kh, kw, the
ONNX layouts) and optional `bias` (O,).
"""

from __future__ import annotations

import numpy as np

from kernels.fconv import conv2d_float
from rsim.ops.registry import OpSpec, register
from rsim.ops.windows import window_out_size


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
    """`kernels.fconv.conv2d_float` (BLAS GEMMs over the whole batch), plus the bias."""
    (x,) = arrays
    y = conv2d_float(x, params["weight"], attrs["strides"], attrs["pads"], attrs["dilations"],
                     attrs["groups"])  # fmt: skip
    if "bias" in params:
        y += params["bias"].reshape(1, -1, 1, 1)
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
