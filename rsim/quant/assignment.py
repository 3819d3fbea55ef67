"""Assign a concrete format to every tensor and a complete `LayerQuant` to every layer of a
network, from the per-layer datapaths (accelerator + qspec), the calibration ranges and the
schedule (whose reduction plans the MAC layers hand to the kernels).

Tensor formats: a graph input takes the activation format; a layer whose op keeps its input's
format (moves, selects or clamps codes: relu, clip, maxpool, layout ops, zero padding) keeps it;
any other layer's output takes its datapath's activation format, whose fractional length, when
dynamic, comes from the calibration range of that output tensor. A layer whose datapath names an
`input` format re-quantizes its inputs to it as they enter (Ristretto's layer-input trimming);
its `in_fmts` are then those formats. Indices are integers in INDEX_FORMAT, never calibrated:
the network's index inputs (token ids stay integer; the quantized path starts at the embedding
gather's output) and the outputs of ops that compute indices or truth values (argmax, equal,
shape: `OpSpec.index_output`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from formats import FixedPoint, Format, Minifloat, RistrettoMinifloat
from formats.dfp import dfp_format
from formats.errors import RsimError
from formats.pow2 import PowerOfTwo
from hwconfigs.schema import Datapath, DynamicFixed
from kernels.plan import ReductionPlan
from kernels.requant import requantize_to_range
from rsim.network import Layer, Network
from rsim.ops import OPS, OpSpec
from rsim.quant.calibrate import TensorRange, activation_fl
from rsim.quant.layer import Constants, LayerQuant
from rsim.quant.qspec import Calibration
from rsim.schedule import Schedule


INDEX_FORMAT = FixedPoint(32, 0)  # indices and truth values: whole numbers below 2^31


def keeps_format(layer: Layer) -> bool:
    """Whether the layer's output stays in its input's format."""
    return OPS[layer.op].keeps_format(layer.attrs, layer.params, len(layer.inputs))


def tensors_to_calibrate(network: Network, input_format, datapaths: Mapping[str, Datapath]
                         ) -> list[str]:
    """Tensors whose dynamic format needs a calibration range: the graph inputs when
    `input_format` is dynamic, and the outputs of the layers that take a dynamic activation
    format."""
    names = [name for name in network.inputs
             if isinstance(input_format, DynamicFixed) and name not in network.index_inputs]
    for layer in network.layers:
        datapath = datapaths[layer.name]
        if not (keeps_format(layer) or _index_output(layer)) and isinstance(
                datapath.activations, DynamicFixed):
            names.append(layer.outputs[0])
        if isinstance(datapath.input, DynamicFixed):
            names.extend(t for t in layer.inputs if t not in names)
    return names


def assign(network: Network, input_format, datapaths: Mapping[str, Datapath],
           schedule: Schedule, ranges: Mapping[str, TensorRange], calibration: Calibration,
           rng: np.random.Generator | None = None
           ) -> tuple[dict[str, Format], list[LayerQuant]]:
    """Formats of every tensor and the quantization of every layer, in network order.

    `input_format`: the graph inputs' (the accelerator's activation format); `datapaths`: each
    layer's; `schedule`: the network's schedule, whose per-layer plans the MAC layers take;
    `rng` draws stochastic rounding of the weights and biases."""
    fmts: dict[str, Format] = {}

    def concrete(spec, tensor: str) -> Format:
        if isinstance(spec, DynamicFixed):
            return spec.at(activation_fl(ranges[tensor], spec.bits, calibration))
        return spec

    for name in network.inputs:
        fmts[name] = INDEX_FORMAT if name in network.index_inputs else concrete(input_format, name)
    quants = []
    for layer in network.layers:
        spec, datapath = OPS[layer.op], datapaths[layer.name]
        if datapath.input is None:
            in_fmts = tuple(fmts[t] for t in layer.inputs)
        else:
            in_fmts = tuple(concrete(datapath.input, t) for t in layer.inputs)
        if _index_output(layer):
            out_fmt = INDEX_FORMAT
        elif keeps_format(layer):
            out_fmt = in_fmts[0]
        else:
            out_fmt = concrete(datapath.activations, layer.outputs[0])
        plan = schedule.layer(layer.name).plan if spec.is_mac else None
        emulated = _float_emulated(spec, layer, datapath, in_fmts, plan)
        constants = None
        if spec.is_mac and not emulated and _constant_operand(layer) is not None:
            constants = _quantize_constants(layer, datapath, plan, in_fmts, rng)
        elif spec.nonlinear_unit and not emulated and "scale" in layer.params:
            constants = _affine_constants(layer, datapath, rng)
        fmts[layer.outputs[0]] = out_fmt
        quants.append(LayerQuant(layer, spec, datapath, in_fmts, out_fmt, plan, constants,
                                 emulated))
    return fmts, quants


def _index_output(layer: Layer) -> bool:
    return OPS[layer.op].index_output(layer.attrs, layer.params, len(layer.inputs))


def _constant_operand(layer: Layer) -> np.ndarray | None:
    """A MAC layer's constant operand: the weight, or a matmul's constant."""
    return layer.params.get("weight", layer.params.get("constant"))


def _float_emulated(spec: OpSpec, layer: Layer, datapath: Datapath,
                    in_fmts: tuple[Format, ...], plan: ReductionPlan | None) -> bool:
    """Whether the op has no bit-accurate model for these input formats and registers."""
    if spec.integer is None or not spec.integer_applies(layer.attrs, layer.params,
                                                        len(layer.inputs)):
        return True
    if spec.nonlinear_unit and datapath.nonlinear != "integer":
        return True
    if all(isinstance(fmt, FixedPoint) for fmt in in_fmts) and (plan is None
                                                                 or plan.is_integer):
        return False
    # minifloat tensors, or fixed-point operands into float registers: selections and moves are
    # exact, the float unit computes sums and MACs
    return not (keeps_format(layer) or spec.minifloat is not None or spec.float_unit)


def _quantize_constants(layer: Layer, datapath: Datapath, plan: ReductionPlan,
                        in_fmts: tuple[Format, ...], rng: np.random.Generator | None
                        ) -> Constants:
    """Weights and bias of a MAC layer: integer codes with the bias aligned to the
    accumulator, or minifloat values with the bias in the register it enters."""
    weights = _constant_operand(layer)
    rounding = datapath.requant_rounding.value
    spec = datapath.weights
    if isinstance(spec, DynamicFixed):
        spec = spec.at(dfp_format(weights, spec.bits).fl)
    bias = layer.params.get("bias")
    if not plan.is_integer:
        # float registers: the operands' values (minifloat, or on a fixed-point grid as in
        # Ristretto's float GEMM), the bias rounded to its format, then into its register
        if not isinstance(spec, (Minifloat, FixedPoint, PowerOfTwo, RistrettoMinifloat)):
            raise RsimError(f"layer '{layer.name}': weights in {spec} do not fit a float "
                            "accumulator; use a minifloat, fixed-point or pow2 format")
        values = spec.quantize(weights, rounding=rounding,
                               overflow=None if isinstance(spec, PowerOfTwo) else "saturate",
                               rng=rng)
        if bias is None:
            return Constants(values, spec, 0, None, None, 0)
        bias_spec = datapath.bias
        if isinstance(bias_spec, DynamicFixed):
            bias_spec = bias_spec.at(dfp_format(bias, bias_spec.bits).fl)
        in_register = plan.bias_register.format.quantize(
            bias_spec.quantize(bias, rounding=rounding, overflow="saturate", rng=rng),
            rounding=rounding, overflow="saturate", rng=rng)
        return Constants(values, spec, 0, in_register, bias_spec, 0)
    if isinstance(in_fmts[0], Minifloat):
        raise RsimError(f"layer '{layer.name}': minifloat activations need a float accumulator, "
                        f"got {plan.accumulator}")
    if isinstance(spec, FixedPoint):
        codes = spec.encode(weights, rounding=rounding, overflow="saturate",
                            rng=rng).astype(np.int64)
        weight_fl = spec.fl
    elif isinstance(spec, PowerOfTwo):
        # a signed power of two 2^e is the fixed-point code 2^(e - exp_min) at fl = -exp_min:
        # the product is the activation shifted left by e - exp_min, as a shifter computes it
        values = spec.quantize(weights, rounding=rounding, rng=rng)
        weight_fl = -spec.exp_min
        codes = np.rint(values * 2.0 ** weight_fl).astype(np.int64)
    else:
        raise RsimError(f"layer '{layer.name}': weights in {spec} with fixed-point activations "
                        "are not a supported datapath; use fixed point or pow2 weights")
    if bias is None:
        return Constants(codes, spec, weight_fl, None, None, 0)
    return Constants(codes, spec, weight_fl,
                     *_aligned_bias(layer, datapath, plan, in_fmts[0].fl + weight_fl, bias, rng))


def _affine_constants(layer: Layer, datapath: Datapath, rng: np.random.Generator | None
                      ) -> Constants:
    """The per-element scale (gamma) and shift (beta) of a normalization on the integer unit:
    codes in the weight and bias formats (each at its own fractional length)."""
    quantized = []
    for role, values in (("weights", layer.params["scale"]), ("bias", layer.params.get("bias"))):
        if values is None:
            quantized.append((None, None, 0))
            continue
        spec = getattr(datapath, role)
        if isinstance(spec, DynamicFixed):
            spec = spec.at(dfp_format(values, spec.bits).fl)
        if not isinstance(spec, FixedPoint):
            raise RsimError(f"layer '{layer.name}': {role} format {spec} does not fit the "
                            "integer nonlinear unit; use fixed point or nonlinear: float")
        codes, clipped = spec.encode_clipped(values, rounding=datapath.requant_rounding.value,
                                             rng=rng)
        quantized.append((codes.astype(np.int64), spec, int(np.count_nonzero(clipped))))
    (gamma, gamma_fmt, _), (beta, beta_fmt, beta_saturations) = quantized
    return Constants(gamma, gamma_fmt, gamma_fmt.fl, beta, beta_fmt, beta_saturations)


def _aligned_bias(layer: Layer, datapath: Datapath, plan: ReductionPlan, acc_fl: int,
                  bias: np.ndarray, rng: np.random.Generator | None
                  ) -> tuple[np.ndarray, FixedPoint, int]:
    """The bias codes at the accumulator's scale (`acc_fl` fractional bits), saturated to the
    register the bias enters, with the bias format and how many values saturated."""
    spec = datapath.bias
    if isinstance(spec, DynamicFixed):
        spec = spec.at(min(acc_fl, dfp_format(bias, spec.bits).fl))
    if not isinstance(spec, FixedPoint):
        raise RsimError(f"layer '{layer.name}': bias format {spec} does not fit an integer "
                        "datapath; use fixed point")
    rounding = datapath.requant_rounding.value
    codes = spec.encode(bias, rounding=rounding, overflow="saturate", rng=rng)
    register = plan.bias_register
    aligned, saturated = requantize_to_range(codes, spec.fl - acc_fl, register.lo, register.hi,
                                             rounding=rounding, rng=rng)
    return aligned.astype(np.int64), spec, int(np.count_nonzero(saturated))
