"""Assign a concrete format to every tensor and a `LayerQuant` to every layer of a network, from
the accelerator's datapath, the qspec overrides and the calibration ranges.

Tensor formats: a graph input takes the activation format; a layer that only moves, selects or
clamps codes (relu, clip, maxpool, layout ops, zero padding) keeps its input's
format; any other layer's output takes its datapath's activation format, whose fractional
length, when dynamic, comes from the calibration range of that output tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from formats import FixedPoint, Format, Minifloat
from formats.dfp import dfp_format
from formats.errors import RsimError
from formats.pow2 import PowerOfTwo
from hwconfigs.schema import Accelerator, DynamicFixed
from kernels.plan import ReductionPlan
from kernels.requant import requantize_to_range
from rsim.bitexact import CODE_LAYOUT_OPS, INTEGER_OPS, MAC_OPS, LayerQuant, clip_codes
from rsim.calibrate import TensorRange, activation_fl
from rsim.network import Layer, Network
from rsim.qspec import QSpec
from rsim.schedule.plan import AccumulationPlan

FORMAT_KEEPING_OPS = CODE_LAYOUT_OPS + ("relu", "clip", "maxpool")


def keeps_format(layer: Layer) -> bool:
    """Whether the layer's output stays in its input's format."""
    if layer.op == "pad":
        return layer.attrs["mode"] == "constant" and layer.attrs["value"] == 0
    return layer.op in FORMAT_KEEPING_OPS


def tensors_to_calibrate(network: Network, hw: Accelerator, qspec: QSpec) -> list[str]:
    """Tensors whose dynamic format needs a calibration range."""
    names = [name for name in network.inputs if isinstance(hw.datapath.activations, DynamicFixed)]
    for layer in network.layers:
        datapath = qspec.datapath_for(layer.name, hw.datapath)
        if not keeps_format(layer) and isinstance(datapath.activations, DynamicFixed):
            names.append(layer.outputs[0])
    return names


def assign(network: Network, hw: Accelerator, qspec: QSpec, ranges: Mapping[str, TensorRange],
           rng: np.random.Generator | None = None
           ) -> tuple[dict[str, Format], list[LayerQuant]]:
    """Formats of every tensor and the quantization of every layer, in network order; `rng`
    draws stochastic rounding of the weights and biases."""
    calibration = qspec.calibration
    fmts: dict[str, Format] = {}

    def concrete(spec, tensor: str) -> Format:
        if isinstance(spec, DynamicFixed):
            return spec.at(activation_fl(ranges[tensor], spec.bits, calibration))
        return spec

    for name in network.inputs:
        fmts[name] = concrete(hw.datapath.activations, name)
    quants = []
    for layer in network.layers:
        datapath = qspec.datapath_for(layer.name, hw.datapath)
        plan = AccumulationPlan.for_array(hw.array.dataflow, hw.array.rows, datapath)
        in_fmts = tuple(fmts[t] for t in layer.inputs)
        out_fmt = in_fmts[0] if keeps_format(layer) else concrete(datapath.activations,
                                                                    layer.outputs[0])
        quant = LayerQuant(layer, datapath, plan, in_fmts, out_fmt,
                           float_emulated=_float_emulated(layer, in_fmts))
        if layer.op in MAC_OPS and not quant.float_emulated and _has_weights(layer):
            _quantize_constants(quant, rng)
        if layer.op == "clip" and isinstance(out_fmt, FixedPoint):
            quant.clip_bounds = clip_codes(layer.attrs, out_fmt)
        fmts[layer.outputs[0]] = out_fmt
        quants.append(quant)
    return fmts, quants


def _has_weights(layer: Layer) -> bool:
    return "weight" in layer.params or "constant" in layer.params


def _float_emulated(layer: Layer, in_fmts: tuple[Format, ...]) -> bool:
    """Layers with no bit-accurate model on these input formats run in float."""
    if layer.op not in INTEGER_OPS:
        return True
    if layer.op == "pad" and not keeps_format(layer):
        return True
    if layer.op in ("add", "sub") and ("constant" in layer.params or len(in_fmts) != 2):
        return True
    if not all(isinstance(fmt, FixedPoint) for fmt in in_fmts):
        # minifloat tensors: a float unit computes these; anything else is emulated
        return not (keeps_format(layer) or layer.op in ("conv", "conv_transpose", "gemm", "add",
                                                        "sub", "concat", "avgpool",
                                                        "global_avgpool"))
    return False


def _quantize_constants(quant: LayerQuant, rng: np.random.Generator | None) -> None:
    """Weights and bias of a MAC layer: integer codes with the bias aligned to the
    accumulator, or minifloat values with the bias in the register it enters."""
    layer, datapath = quant.layer, quant.datapath
    weights = layer.params.get("weight", layer.params.get("constant"))
    rounding = datapath.requant_rounding.value
    spec = datapath.weights
    if isinstance(spec, DynamicFixed):
        spec = spec.at(dfp_format(weights, spec.bits).fl)
    if isinstance(quant.in_fmts[0], Minifloat):
        if not isinstance(spec, Minifloat) or quant.plan.is_integer:
            raise RsimError(f"layer '{layer.name}': minifloat activations need minifloat weights "
                            f"and a float accumulator, got weights {spec}")
        quant.weights = spec.quantize(weights, rounding=rounding, overflow="saturate", rng=rng)
        quant.weight_fmt = spec
        bias = layer.params.get("bias")
        if bias is not None:
            quant.bias_fmt = datapath.bias
            register = quant.plan.bias_register.format
            quant.bias = register.quantize(
                datapath.bias.quantize(bias, rounding=rounding, overflow="saturate", rng=rng),
                rounding=rounding, overflow="saturate", rng=rng)
        return
    if isinstance(spec, FixedPoint):
        quant.weights = spec.encode(weights, rounding=rounding, overflow="saturate",
                                    rng=rng).astype(np.int64)
        quant.weight_fl = spec.fl
    elif isinstance(spec, PowerOfTwo):
        # a signed power of two 2^e is the fixed-point code 2^(e - exp_min) at fl = -exp_min:
        # the product is the activation shifted left by e - exp_min, as a shifter computes it
        values = spec.quantize(weights, rounding=rounding, rng=rng)
        quant.weight_fl = -spec.exp_min
        quant.weights = np.rint(values * 2.0 ** quant.weight_fl).astype(np.int64)
    else:
        raise RsimError(f"layer '{layer.name}': weights in {spec} with fixed-point activations "
                        "are not a supported datapath; use fixed point or pow2 weights")
    quant.weight_fmt = spec
    bias = layer.params.get("bias")
    if bias is not None:
        quant.bias_fmt, quant.bias = _aligned_bias(quant, bias, rng)


def _aligned_bias(quant: LayerQuant, bias: np.ndarray,
                  rng: np.random.Generator | None) -> tuple[FixedPoint, np.ndarray]:
    """The bias format and its codes at the accumulator's scale, saturated to the register the
    bias enters (how many saturated is kept in `quant.bias_saturations`)."""
    datapath, acc_fl = quant.datapath, quant.acc_fl
    spec = datapath.bias
    if isinstance(spec, DynamicFixed):
        spec = spec.at(min(acc_fl, dfp_format(bias, spec.bits).fl))
    if not isinstance(spec, FixedPoint):
        raise RsimError(f"layer '{quant.layer.name}': bias format {spec} does not fit an integer "
                        "datapath; use fixed point")
    rounding = datapath.requant_rounding.value
    codes = spec.encode(bias, rounding=rounding, overflow="saturate", rng=rng)
    # the integer register the bias enters, with its own saturation range (symmetric or not)
    register = ReductionPlan.build(**quant.plan.gemm_kwargs()).bias_register
    aligned, saturated = requantize_to_range(codes, spec.fl - acc_fl, register.lo, register.hi,
                                             rounding=rounding, rng=rng)
    quant.bias_saturations = int(np.count_nonzero(saturated))
    return spec, aligned.astype(np.int64)
