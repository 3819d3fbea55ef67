"""Bit-accurate execution of one IR layer on quantized tensors, the way the accelerator computes it.

A tensor of the simulated path is a `QTensor`: integer codes (value = code * 2^-fl; kept in the
narrowest integer type that holds the format, e.g. int8) of a fixed-point format, or float64
values on the grid of a minifloat format. `LayerQuant` holds a
layer's resolved quantization (weight codes, bias aligned to the accumulator, output format,
reduction plan) and `run` computes the layer:

- conv / conv_transpose / gemm / matmul: the integer kernels of `kernels/` (exact products,
  accumulator and partial-sum registers as the schedule's plan says), then requantization of the
  accumulator (fl_in + fl_w fractional bits) to the output format by an arithmetic shift with the
  datapath's rounding, saturating; minifloat datapaths use the minifloat kernels instead;
- relu / clip / maxpool / flatten / reshape / transpose / squeeze / unsqueeze / zero pad: on codes,
  the output keeps the input's format (nothing to round);
- avgpool / global_avgpool: exact window sums divided by the tap count with one rounding into
  the output grid (a finer grid scales the sums up exactly, a coarser one multiplies the divisor
  by the power of two), then saturated to the output format;
- add / sub of two activations and concat: operands aligned exactly, then one requantization to
  the output format;
- everything else (sigmoid, softmax, hard_swish, mul, div, unfolded batchnorm, lrn, ...) has no
  integer model here: it runs in float64 on the decoded inputs and its result is quantized to the
  output format (`float_emulated`).

Bias: a fixed-point bias is quantized to its own format (a dynamic one takes the fl of its range,
at most the accumulator's fl) and then shifted to the accumulator's scale; a value the register
cannot hold saturates there, as a saturating bias loader would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import kernels
from formats import FixedPoint, Format
from formats.errors import RsimError
from hwconfigs.schema import Datapath
from kernels.elementwise import add_aligned, fixed_values
from kernels.pool import avg_pool2d, max_pool2d
from kernels.requant import requantize_shift, requantize_to_range
from rsim.network import Layer
from rsim.schedule.plan import AccumulationPlan

MAC_OPS = ("conv", "conv_transpose", "gemm", "matmul")
CODE_LAYOUT_OPS = ("flatten", "reshape", "transpose", "squeeze", "unsqueeze")
# selections and layout moves: on a monotone rounding into the one format they keep, running
# them on quantized values equals quantizing their float result
QUANTIZATION_COMMUTING_OPS = CODE_LAYOUT_OPS + ("relu", "maxpool")
INTEGER_OPS = MAC_OPS + CODE_LAYOUT_OPS + ("relu", "clip", "maxpool", "avgpool",
                                           "global_avgpool", "add", "sub", "concat", "pad")


@dataclass(frozen=True)
class QTensor:
    """A simulated tensor: fixed-point codes (any integer type) or minifloat grid values
    (float64)."""

    data: np.ndarray
    fmt: Format

    def values(self) -> np.ndarray:
        """The real values the tensor stands for (float64)."""
        if isinstance(self.fmt, FixedPoint):
            return fixed_values(self.data, self.fmt.fl)
        return self.data

    @property
    def scale(self) -> float | None:
        """The value of code 1 when `data` holds fixed-point codes (values = data·scale), else
        None (`data` holds the values)."""
        return 2.0 ** -self.fmt.fl if isinstance(self.fmt, FixedPoint) else None


@dataclass
class Outcome:
    """One layer's simulated output, with what the trace and the RTL vectors need."""

    out: QTensor
    clipped: np.ndarray | None = None  # outputs saturated on the way into the output format
    acc: np.ndarray | None = None  # accumulator values before requantization (MAC layers)
    stats: kernels.AccumulatorStats | None = None


def quantize(x: np.ndarray, fmt: Format, rounding: str,
             rng: np.random.Generator | None) -> tuple[QTensor, np.ndarray]:
    """Float values into `fmt` (saturating), with the mask of values that clipped."""
    if isinstance(fmt, FixedPoint):
        codes, clipped = fmt.encode_clipped(x, rounding=rounding, rng=rng)
        return QTensor(codes, fmt), clipped
    x = np.asarray(x, dtype=np.float64)
    values = fmt.quantize(x, rounding=rounding, overflow="saturate", rng=rng)
    return QTensor(np.asarray(values, dtype=np.float64), fmt), np.abs(x) > fmt.max


@dataclass
class LayerQuant:
    """A layer's resolved quantization: formats, constant codes and the reduction plan."""

    layer: Layer
    datapath: Datapath
    plan: AccumulationPlan
    in_fmts: tuple[Format, ...]
    out_fmt: Format
    weight_fmt: Format | None = None
    bias_fmt: Format | None = None
    weights: np.ndarray | None = None  # int64 codes (integer) or float64 values (minifloat)
    weight_fl: int = 0
    bias: np.ndarray | None = None  # at the accumulator's scale (integer) or float64 values
    bias_saturations: int = 0  # bias values that saturated when loaded into their register
    float_emulated: bool = False
    clip_bounds: tuple[int, int] | None = None  # code bounds of a clip layer

    @property
    def integer(self) -> bool:
        return isinstance(self.in_fmts[0], FixedPoint) if self.in_fmts else False

    @property
    def acc_fl(self) -> int:
        """Fractional length of the accumulator of an integer MAC layer: the sum of its two
        operands' (the weights', or the second activation's for a product of two activations)."""
        second = self.weight_fl if self.weights is not None else self.in_fmts[1].fl
        return self.in_fmts[0].fl + second

    def commutes_with(self, rounding: str) -> bool:
        """Whether this layer on inputs quantized with `rounding` gives exactly its float output
        quantized the same way (deterministic rounding is monotone and keeps 0 at 0)."""
        return (self.layer.op in QUANTIZATION_COMMUTING_OPS and rounding != "stochastic"
                and len(self.in_fmts) == 1 and self.out_fmt == self.in_fmts[0])

    def formats(self) -> dict[str, str]:
        """Role -> format spec, for tables and traces."""
        roles = {"input": str(self.in_fmts[0]) if self.in_fmts else "", "output": str(self.out_fmt)}
        if self.weight_fmt is not None:
            roles["weights"] = str(self.weight_fmt)
        if self.bias_fmt is not None:
            roles["bias"] = str(self.bias_fmt)
        if self.layer.op in MAC_OPS:
            roles["accumulator"] = _register_text(self.plan.accumulator)
            if self.plan.partial_sum is not None:
                roles["partial_sum"] = _register_text(self.plan.partial_sum)
        return roles

    def run(self, inputs: list[QTensor], rng: np.random.Generator | None = None) -> Outcome:
        """The layer on simulated inputs (formats as `in_fmts` says)."""
        op = self.layer.op
        rounding = self.datapath.requant_rounding.value
        if op in MAC_OPS and not self.float_emulated:
            return (self._mac_integer(inputs, rng) if self.integer
                    else self._mac_float(inputs))
        if self.float_emulated or not self.integer:
            # no integer model, or minifloat tensors: selections (relu, max, layout) are exact
            # in float64, sums and averages are rounded once to the output format
            result = self.layer.forward(*(t.values() for t in inputs), dtype=np.float64)
            out, clipped = quantize(result, self.out_fmt, rounding, rng)
            return Outcome(out, clipped)
        x = inputs[0]
        if op in CODE_LAYOUT_OPS or op == "pad":
            # codes below 2^53 are exact in float64, so the float layout op moves them unchanged
            data = self.layer.forward(x.data.astype(np.float64), dtype=np.float64)
            return Outcome(QTensor(data.astype(x.data.dtype), x.fmt))
        if op == "relu":
            return Outcome(QTensor(np.maximum(x.data, 0), x.fmt))
        if op == "clip":
            lo, hi = self.clip_bounds
            return Outcome(QTensor(np.clip(x.data, lo, hi), x.fmt))
        if op == "maxpool":
            return Outcome(QTensor(self._pool(x, max_pool2d), x.fmt))
        if op in ("avgpool", "global_avgpool"):
            return self._avgpool(x, rounding, rng)
        if op in ("add", "sub"):
            return self._add(inputs, rounding, rng)
        if op == "concat":
            return self._concat(inputs, rounding, rng)
        raise RsimError(f"layer '{self.layer.name}': op {op!r} has no bit-accurate model")

    def run_changed(self, inputs: list[QTensor], before: list[QTensor], outcome: Outcome,
                    rng: np.random.Generator | None = None) -> Outcome:
        """`run(inputs)`, given the `outcome` of `run(before)` on inputs of the same formats
        that differ in a few codes: a convolution that provably cannot overflow a register
        reuses the accumulators and convolves only the changed codes
        (`kernels.conv2d_changed`); anything else runs afresh."""
        if (self.layer.op == "conv" and self.integer and not self.float_emulated
                and outcome.acc is not None and inputs[0].fmt == before[0].fmt):
            changed = kernels.conv2d_changed(
                outcome.acc, before[0].data, inputs[0].data, self.weights, bias=self.bias,
                **self._window(), **self.plan.gemm_kwargs())
            if changed is not None:
                return self._output_stage(*changed, rng)
        return self.run(inputs, rng)

    # -- MAC layers ---------------------------------------------------------------------------

    def _mac_integer(self, inputs: list[QTensor], rng) -> Outcome:
        op = self.layer.op
        kwargs = self.plan.gemm_kwargs()
        x = inputs[0].data
        if op == "conv":
            acc, stats = kernels.conv2d(x, self.weights, bias=self.bias, **self._window(),
                                        **kwargs)
        elif op == "conv_transpose":
            acc, stats = kernels.conv_transpose2d(x, self.weights, bias=self.bias,
                                                  **self._window(), **kwargs)
        elif op == "gemm":
            flat = x.reshape(-1, x.shape[-1])
            acc, stats = kernels.gemm(flat, self.weights, bias=self.bias, **kwargs)
            acc = acc.reshape(*x.shape[:-1], acc.shape[-1])
        else:
            acc, stats = self._matmul_integer(inputs, kwargs)
        return self._output_stage(acc, stats, rng)

    def _output_stage(self, acc: np.ndarray, stats: kernels.AccumulatorStats, rng) -> Outcome:
        """Integer accumulators (acc_fl fractional bits) requantized to the output format."""
        out, clipped = self._requantize(acc, self.acc_fl, rng)
        return Outcome(out, clipped, acc, stats)

    def _window(self) -> dict:
        """The convolution geometry keywords of the kernels, from the layer's attributes."""
        attrs = self.layer.attrs
        window = {"stride": attrs["strides"], "padding": attrs["pads"],
                  "dilation": attrs["dilations"], "groups": attrs["groups"]}
        if self.layer.op == "conv_transpose":
            window["output_padding"] = attrs["output_padding"]
        return window

    def _matmul_integer(self, inputs: list[QTensor], kwargs: dict):
        if self.weights is not None:
            const = self.weights
            left, right = ((const, inputs[0].data) if self.layer.attrs["constant_first"]
                           else (inputs[0].data, const))
        else:
            left, right = inputs[0].data, inputs[1].data
        shape = np.broadcast_shapes(left.shape[:-2], right.shape[:-2])
        left = np.broadcast_to(left, shape + left.shape[-2:]).reshape(-1, *left.shape[-2:])
        right = np.broadcast_to(right, shape + right.shape[-2:]).reshape(-1, *right.shape[-2:])
        parts = [kernels.gemm(np.ascontiguousarray(a), np.ascontiguousarray(b), **kwargs)
                 for a, b in zip(left, right)]
        acc = np.stack([acc for acc, _ in parts]).reshape(shape + parts[0][0].shape)
        stats = kernels.AccumulatorStats(
            np.stack([s.acc_events for _, s in parts]).reshape(acc.shape),
            np.stack([s.psum_events for _, s in parts]).reshape(acc.shape),
            channel_axis=acc.ndim - 1, outputs_at_risk=sum(s.outputs_at_risk for _, s in parts))
        return acc, stats

    def _mac_float(self, inputs: list[QTensor]) -> Outcome:
        """A minifloat MAC layer: exact (or product-format) products, accumulator and partial
        sums rounded after every addition as the plan says, then the output format."""
        op, plan = self.layer.op, self.plan
        x = inputs[0]
        common = dict(acc_format=plan.accumulator.format, product_format=self.datapath.product,
                      k_chunk=plan.k_chunk, bias=self.bias, bias_mode=plan.bias_mode,
                      psum_format=None if plan.partial_sum is None else plan.partial_sum.format,
                      rounding=self.datapath.requant_rounding)
        if op in ("conv", "conv_transpose"):
            conv = kernels.minifloat_conv2d if op == "conv" else kernels.minifloat_conv_transpose2d
            acc = conv(x.data, self.weights, x_format=x.fmt, w_format=self.weight_fmt,
                       **self._window(), **common)
        else:  # gemm (a minifloat matmul of two activations is float-emulated)
            flat = x.data.reshape(-1, x.data.shape[-1])
            acc = kernels.minifloat_gemm(flat, self.weights, a_format=x.fmt,
                                         b_format=self.weight_fmt, **common)
            acc = acc.reshape(*x.data.shape[:-1], acc.shape[-1])
        out, clipped = quantize(acc, self.out_fmt, self.datapath.requant_rounding.value, None)
        return Outcome(out, clipped, acc)

    def _requantize(self, acc: np.ndarray, acc_fl: int, rng) -> tuple[QTensor, np.ndarray]:
        """Accumulator codes (acc_fl fractional bits) to the output format: one rounding shift,
        then saturation; the mask marks saturated outputs."""
        fmt = self.out_fmt
        if not isinstance(fmt, FixedPoint):
            values = acc * 2.0 ** -acc_fl
            return quantize(values, fmt, self.datapath.requant_rounding.value, rng)
        codes, clipped = requantize_to_range(acc, acc_fl - fmt.fl, fmt.min_code, fmt.max_code,
                                             rounding=self.datapath.requant_rounding, rng=rng)
        return QTensor(codes, fmt), clipped

    # -- other integer layers -----------------------------------------------------------------

    def _pool(self, x: QTensor, pool, **extra) -> np.ndarray:
        attrs = self.layer.attrs
        return pool(x.data, attrs["kernel"], stride=attrs["strides"], padding=attrs["pads"],
                    dilation=attrs["dilations"], ceil_mode=attrs["ceil_mode"], **extra)

    def _avgpool(self, x: QTensor, rounding: str, rng) -> Outcome:
        """Exact window sums, one rounded division into the output grid: a finer grid scales
        the codes up exactly first, a coarser one joins the divisor (count·2^shift)."""
        fmt = self.out_fmt
        finer = fmt.fl - x.fmt.fl
        codes = QTensor(x.data.astype(np.int64) << max(finer, 0), x.fmt)
        divide = {"rounding": rounding, "rng": rng, "divisor_shift": max(-finer, 0)}
        if self.layer.op == "global_avgpool":
            h, w = x.data.shape[2:]
            mean = avg_pool2d(codes.data, (h, w), **divide)
        else:
            mean = self._pool(codes, avg_pool2d, count_include_pad=self.layer.attrs[
                "count_include_pad"], **divide)
        out = np.clip(mean, fmt.min_code, fmt.max_code)
        return Outcome(QTensor(out.astype(fmt.code_dtype), fmt), out != mean)

    def _add(self, inputs: list[QTensor], rounding: str, rng) -> Outcome:
        a, b = inputs
        b_data = b.data if self.layer.op == "add" else -b.data.astype(np.int64)
        fmt = self.out_fmt
        total = add_aligned(a.data, a.fmt.fl, b_data, b.fmt.fl, out_frac=fmt.fl, out_bits=64,
                            rounding=rounding, rng=rng)
        codes = np.clip(total, fmt.min_code, fmt.max_code)
        return Outcome(QTensor(codes.astype(fmt.code_dtype), fmt), codes != total)

    def _concat(self, inputs: list[QTensor], rounding: str, rng) -> Outcome:
        fmt = self.out_fmt
        parts = [requantize_shift(t.data, t.fmt.fl - fmt.fl, out_bits=64, rounding=rounding,
                                  rng=rng) for t in inputs]
        joined = np.concatenate(parts, axis=self.layer.attrs["axis"])
        codes = np.clip(joined, fmt.min_code, fmt.max_code)
        return Outcome(QTensor(codes.astype(fmt.code_dtype), fmt), codes != joined)


def _register_text(register) -> str:
    if register.bits is not None:
        return f"int{register.bits}/{register.overflow.value}"
    return str(register.format)


def clip_codes(attrs: dict, fmt: FixedPoint) -> tuple[int, int]:
    """The code bounds of a clip layer in `fmt`: min rounded up, max rounded down, so the
    clipped codes never leave [min, max]."""
    lo = fmt.min_code if attrs["min"] is None or math.isinf(attrs["min"]) else \
        max(fmt.min_code, math.ceil(attrs["min"] * 2.0 ** fmt.fl))
    hi = fmt.max_code if attrs["max"] is None or math.isinf(attrs["max"]) else \
        min(fmt.max_code, math.floor(attrs["max"] * 2.0 ** fmt.fl))
    return lo, hi
