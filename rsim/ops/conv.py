"""2-D convolution and transposed convolution: float forward (im2col + BLAS, batched, grouped),
GEMM lowering, and the bit-accurate models (the integer and minifloat kernels of `kernels/`).

Attributes (normalised by the frontends): `kernel` (kh, kw), `strides` (sh, sw), `dilations`
(dh, dw), `pads` (top, left, bottom, right), `groups`; conv_transpose adds `output_padding`
(oh, ow). Params: `weight` (conv: O, C/groups, kh, kw; conv_transpose: C, O/groups, kh, kw, the
ONNX layouts) and optional `bias` (O,).

Lowering: conv is one GEMM per group, M = batch x output pixels, K = kh x kw x in_channels/groups,
N = out_channels/groups. conv_transpose, in the scatter form the float path uses: per group,
M = batch x input pixels, K = in_channels/groups, N = out_channels/groups x kh x kw (the col2im
additions after it are not MACs).
"""

from __future__ import annotations

import numpy as np

import kernels
from kernels.fconv import conv2d_float
from rsim.ops.registry import OpSpec, register
from rsim.ops.windows import window_out_size
from rsim.schedule.geometry import GemmWork, conv_work


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


def _conv_lowering(name, shapes, out, attrs, params) -> GemmWork:
    (n, c, h, w), (_, o, ho, wo) = shapes[0], out
    kh, kw = params["weight"].shape[2:]
    return conv_work(name, in_h=h, in_w=w, in_channels=c, out_h=ho, out_w=wo, out_channels=o,
                     kernel_h=kh, kernel_w=kw, groups=attrs["groups"], batch=n)


def window(attrs) -> dict:
    """The kernels' convolution geometry keywords, from a conv layer's attributes."""
    geometry = {"stride": attrs["strides"], "padding": attrs["pads"],
                "dilation": attrs["dilations"], "groups": attrs["groups"]}
    if "output_padding" in attrs:
        geometry["output_padding"] = attrs["output_padding"]
    return geometry


def _integer_model(kernel: str):
    """The model of a convolution on codes: the integer kernel `kernels.<kernel>` on the layer's
    plan, then the accumulators requantized to the output format."""
    def model(quant, inputs, rng):
        acc, stats = getattr(kernels, kernel)(inputs[0].data, quant.weights, quant.plan, bias=quant.bias,
                            **window(quant.layer.attrs))
        return quant.output_stage(acc, stats, rng)

    return model


def _minifloat_model(kernel: str):
    """The model of a convolution on a minifloat datapath: `kernels.<kernel>` on the layer's
    plan, then its result rounded once to the output format."""
    def model(quant, inputs, rng):
        x = inputs[0]
        acc = getattr(kernels, kernel)(x.values(), quant.weights, quant.plan, x_format=x.fmt,
                     w_format=quant.weight_fmt, bias=quant.bias, **window(quant.layer.attrs))
        return quant.rounded_output(acc, rng, acc)

    return model


def _conv_changed(quant, inputs, before, outcome, rng):
    """A conv's run on inputs that differ from `before` in few codes, from the accumulators of
    `outcome`: exact by integer linearity when no register can overflow
    (`kernels.conv2d_changed`; None otherwise)."""
    if outcome.acc is None:
        return None
    changed = kernels.conv2d_changed(outcome.acc, before[0].data, inputs[0].data, quant.weights,
                                     quant.plan, bias=quant.bias, **window(quant.layer.attrs))
    return None if changed is None else quant.output_stage(*changed, rng)


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


def _conv_transpose_lowering(name, shapes, out, attrs, params) -> GemmWork:
    (n, c, h, w), (_, _, ho, wo) = shapes[0], out
    groups = attrs["groups"]
    _, out_per_group, kh, kw = params["weight"].shape
    m, k, cols = n * h * w, c // groups, out_per_group * kh * kw
    return GemmWork(name, "conv_transpose", m, k, cols, groups, m * k, k * cols,
                    n * ho * wo * out_per_group)




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


register(OpSpec("conv", _conv_forward, _conv_shape, lowering=_conv_lowering,
                integer=_integer_model("conv2d"), integer_changed=_conv_changed,
                minifloat=_minifloat_model("minifloat_conv2d")))
register(OpSpec("conv_transpose", _conv_transpose_forward, _conv_transpose_shape,
                lowering=_conv_transpose_lowering, integer=_integer_model("conv_transpose2d"),
                minifloat=_minifloat_model("minifloat_conv_transpose2d")))
