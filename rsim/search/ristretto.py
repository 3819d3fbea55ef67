"""Ristretto's `quantize` search, reproduced (facts: ristretto-facts.md §2d):

dynamic fixed point: the ranges (max |x| of each conv/FC layer's input, output and weights; a
Caffe blob's final value, as Ristretto reads them after a whole forward pass) of the first
batches give integer lengths (weights ceil(log2 max) + 1, activations ceil(log2 max)); then three
independent sweeps over 16/8/4/2/1 bits, each stopping at the first width whose top-1 falls more
than the margin below the float baseline: (a) conv weights (conv layers quantized, their
activations at the unset default of 32-bit DFP with fl 16, FC layers float), (b) FC weights (the
same for FC layers), (c) activations (conv and FC inputs and outputs, weights at the 32/16
default); a part starts at 32 bits, so a part whose 16 bits already fail stays at 32. The combined
net (conv, FC and activation widths together) is scored once, not checked against the margin.
minifloat: one exponent width E = max(4, ceil(log2(log2(max) - 1) + 1)) over every range, then
16/8/4... bits (mantissa bw - E - 1 while positive) for every tensor of every conv/FC layer;
integer_power_of_2_weights: no search: weights 2^-8..2^-1, activations 8-bit DFP.

Every design runs on the `ristretto-caffe` config: float32 tensors trimmed where the parameters
say, float32 accumulation. Deliberate deviation: Ristretto renames Deconvolution layers into
ConvolutionRistretto through a substring match and then reads past its range table; rsim treats
transposed convolutions as conv layers with their own ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import hwconfigs
from formats.dfp import integer_length
from formats.errors import RsimError
from rsim.frontends.caffe.ristretto import RISTRETTO_HW, RistrettoParams, datapath_override
from rsim.search.evaluate import SearchData, mac_layers

WIDTHS = (16, 8, 4, 2, 1)
RANGE_BATCHES = 10  # Ristretto collects ranges over 10 batches
MODES = ("dynamic_fixed_point", "minifloat", "integer_power_of_2_weights")


@dataclass
class RistrettoSearch:
    """The outcome: per-part sweep results, the chosen widths and per-layer parameters, the
    combined net's accuracy, and Ristretto's summary lines."""

    mode: str
    baseline: float
    sweeps: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)
    params: dict[str, RistrettoParams] = field(default_factory=dict)
    accuracy: float | None = None
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ranges:
    conv: list[str]
    fc: list[str]
    il_in: dict[str, int]
    il_out: dict[str, int]
    il_params: dict[str, int]
    max_in: dict[str, float]
    max_out: dict[str, float]


def _ranges(data: SearchData) -> _Ranges:
    layers = mac_layers(data.network)
    tensors = sorted({t for layer in layers for t in (layer.inputs[0], layer.outputs[0])})
    found = data.max_abs(tensors, RANGE_BATCHES)
    conv = [layer.name for layer in layers if layer.op in ("conv", "conv_transpose")]
    fc = [layer.name for layer in layers if layer.name not in conv]
    params = {layer.name: layer.params.get("weight", layer.params.get("constant"))
              for layer in layers}
    max_in = {layer.name: found[layer.inputs[0]] for layer in layers}
    max_out = {layer.name: found[layer.outputs[0]] for layer in layers}
    return _Ranges(conv, fc,
                   {n: integer_length(v, "activations") for n, v in max_in.items()},
                   {n: integer_length(v, "activations") for n, v in max_out.items()},
                   {n: integer_length(float(abs(p).max()), "weights") for n, p in params.items()},
                   max_in, max_out)


def search(data: SearchData, mode: str, margin: float, ties: str = "gpu",
           progress: Callable[[str], None] | None = None) -> RistrettoSearch:
    """Ristretto's search of `mode` with an error `margin` in percent (see the module
    docstring); `ties` is Ristretto's build whose tie rule to use (gpu: to even, cpu: away)."""
    if mode not in MODES:
        raise RsimError(f"trimming mode {mode!r} is not one of {', '.join(MODES)}")
    hw = hwconfigs.load(RISTRETTO_HW)
    ranges = _ranges(data)
    result = RistrettoSearch(mode, data.float_top1())

    def score(params: dict[str, RistrettoParams], what: str) -> float:
        if progress is not None:
            progress(what)
        entries = [{"match": name, **datapath_override(p, ties)} for name, p in params.items()]
        return data.quantized_top1(hw, entries)

    if mode == "dynamic_fixed_point":
        _dynamic_fixed_point(result, ranges, margin, score)
    elif mode == "minifloat":
        _minifloat(result, ranges, margin, score)
    else:
        result.params = {name: RistrettoParams(
            "INTEGER_POWER_OF_2_WEIGHTS", bw_layer_in=8, bw_layer_out=8,
            fl_layer_in=8 - ranges.il_in[name], fl_layer_out=8 - ranges.il_out[name])
            for name in ranges.conv + ranges.fc}
        result.accuracy = score(result.params, "power-of-two weights")
        result.lines = ["Network accuracy analysis for", "Integer-power-of-two weights",
                        "in Convolutional (CONV) and", "fully connected (FC) layers.",
                        f"Baseline 32bit float: {result.baseline:g}", "Quantized net:",
                        f"4bit: \t{result.accuracy:g}", "Please fine-tune."]
    return result


def _passes(accuracy: float, baseline: float, margin: float) -> bool:
    return accuracy + margin / 100 >= baseline


def _sweep(result: RistrettoSearch, part: str, make, margin: float, score,
           widths=WIDTHS) -> int:
    """Score widths in order until the first that fails; the last passing one (32 if none)."""
    chosen, results = 32, []
    for bits in widths:
        accuracy = score(make(bits), f"{part} {bits} bits")
        results.append((bits, accuracy))
        if not _passes(accuracy, result.baseline, margin):
            break
        chosen = bits
    result.sweeps[part] = results
    result.chosen[part] = chosen
    return chosen


def _dynamic_fixed_point(result: RistrettoSearch, ranges: _Ranges, margin: float,
                         score) -> None:
    def weights(names: list[str]):
        return lambda bits: {n: RistrettoParams(bw_params=bits,
                                                fl_params=bits - ranges.il_params[n])
                             for n in names}

    def activations(bits: int) -> dict[str, RistrettoParams]:
        return {n: RistrettoParams(bw_layer_in=bits, bw_layer_out=bits,
                                   fl_layer_in=bits - ranges.il_in[n],
                                   fl_layer_out=bits - ranges.il_out[n])
                for n in ranges.conv + ranges.fc}

    conv = _sweep(result, "conv", weights(ranges.conv), margin, score)
    fc = _sweep(result, "fc", weights(ranges.fc), margin, score)
    act = _sweep(result, "activations", activations, margin, score)
    result.params = {n: RistrettoParams(
        bw_layer_in=act, bw_layer_out=act, bw_params=conv if n in ranges.conv else fc,
        fl_layer_in=act - ranges.il_in[n], fl_layer_out=act - ranges.il_out[n],
        fl_params=(conv if n in ranges.conv else fc) - ranges.il_params[n])
        for n in ranges.conv + ranges.fc}
    result.accuracy = score(result.params, "combined net")
    lines = ["------------------------------", "Network accuracy analysis for",
             "Convolutional (CONV) and fully", "connected (FC) layers.",
             f"Baseline 32bit float: {result.baseline:g}"]
    for part, title in (("conv", ["Dynamic fixed point CONV", "weights: "]),
                        ("fc", ["Dynamic fixed point FC", "weights: "]),
                        ("activations", ["Dynamic fixed point layer", "activations:"])):
        lines += title + [f"{bits}bit: \t{accuracy:g}" for bits, accuracy in result.sweeps[part]]
    lines += ["Dynamic fixed point net:", f"{conv}bit CONV weights,", f"{fc}bit FC weights,",
              f"{act}bit layer activations:", f"Accuracy: {result.accuracy:g}",
              "Please fine-tune."]
    result.lines = lines


def exponent_bits(ranges: _Ranges) -> int:
    """Ristretto's minifloat exponent width: the smallest E >= 4 whose nominal max
    (2 - eps)·2^(2^(E-1)) covers every layer input and output (maxima <= 2 are ignored, as the
    undefined cast in Ristretto's formula ignores them)."""
    widths = [4]
    for value in list(ranges.max_in.values()) + list(ranges.max_out.values()):
        if value > 2:
            widths.append(math.ceil(math.log2(math.log2(value) - 1) + 1))
    return max(widths)


def _minifloat(result: RistrettoSearch, ranges: _Ranges, margin: float, score) -> None:
    exp = exponent_bits(ranges)
    names = ranges.conv + ranges.fc
    widths = [bits for bits in (16, 8, 4, 2, 1) if bits - 1 - exp > 0]

    def make(bits: int) -> dict[str, RistrettoParams]:
        return {n: RistrettoParams("MINIFLOAT", mant_bits=bits - exp - 1, exp_bits=exp)
                for n in names}

    chosen = _sweep(result, "minifloat", make, margin, score, widths)
    result.params = make(chosen) if chosen != 32 else {
        n: RistrettoParams("MINIFLOAT", mant_bits=31 - exp, exp_bits=exp) for n in names}
    result.lines = (["Network accuracy analysis for", "Convolutional (CONV) and fully",
                     "connected (FC) layers.", f"Baseline 32bit float: {result.baseline:g}",
                     "Minifloat net:"]
                    + [f"{bits}bit: \t{accuracy:g}" for bits, accuracy in
                       result.sweeps["minifloat"]] + ["Please fine-tune."])
