"""A per-layer bit-width search on the accelerator's own integer datapath (beyond Ristretto's
three network-wide widths), and the accumulator widths it needs:

1. Sensitivity: each MAC layer's weights, and each one's output activations, lowered alone from
   8 bits (dynamic fixed point) through 7, 6, ..., 2 while the net stays within the margin of
   the float baseline (the others at 8 bits): the accuracy at each width.
2. Greedy assembly: the single-layer reductions, cheapest first by measured accuracy loss per
   bit saved (weight bits count once per weight, activation bits once per output value), are
   applied one at a time; after each the combined net is scored, and a reduction that takes it
   out of the margin is backed off and that layer's part is frozen at its last width.
3. Registers: the bias keeps its own 16-bit format; each layer's accumulator (and partial sum)
   gets the fewest bits that hold every accumulator result on the data (measured on the final
   formats with 48-bit registers), and the final design is scored with them (should a running
   sum exceed the results and cost accuracy, the registers widen by 2 bits until it passes).

Every design runs on the given accelerator (its array, dataflow and energy table), so its MAC
energy and weight memory can be set against another choice on the same hardware.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwconfigs.schema import Accelerator
from rsim.quant.qspec import QSpec
from rsim.search.evaluate import SearchData, _Batches, mac_layers
from rsim.simulation import prepare

START_BITS = 8
MIN_BITS = 2  # a signed fixed-point word needs a sign and a value bit
BIAS_BITS = 16


@dataclass
class PerLayerSearch:
    """Per layer: weight and output bits, accumulator bits; the accuracies measured."""

    baseline: float
    weights: dict[str, int] = field(default_factory=dict)
    activations: dict[str, int] = field(default_factory=dict)
    accumulators: dict[str, int] = field(default_factory=dict)
    sensitivity: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    steps: list[tuple[str, str, int, float, bool]] = field(default_factory=list)
    accuracy: float | None = None

    def entries(self, with_registers: bool = True) -> list[dict]:
        """The design as qspec entries (one per MAC layer)."""
        entries = []
        for name, bits in self.weights.items():
            entry = {"match": name, "weights": {"bits": bits, "fl": "dynamic"},
                     "activations": {"bits": self.activations[name], "fl": "dynamic"},
                     "bias": {"bits": BIAS_BITS, "fl": "dynamic"}}
            if with_registers and name in self.accumulators:
                register = {"bits": self.accumulators[name], "overflow": "saturate"}
                entry |= {"accumulator": register, "partial_sum": dict(register)}
            entries.append(entry)
        return entries


def search(data: SearchData, hw: Accelerator, margin: float,
           progress: Callable[[str], None] | None = None) -> PerLayerSearch:
    """The per-layer search of the module docstring, with an error `margin` in percent."""
    layers = mac_layers(data.network)
    result = PerLayerSearch(data.float_top1())
    result.weights = {layer.name: START_BITS for layer in layers}
    result.activations = {layer.name: START_BITS for layer in layers}
    batch = data.batches[0][0].shape[0]
    weight_counts = {layer.name: int(layer.params.get("weight", layer.params.get("constant")).size)
                     for layer in layers}
    output_counts = {layer.name: math.prod(data.network.shape(layer.outputs[0], 1))
                     for layer in layers}

    def score(what: str) -> float:
        if progress is not None:
            progress(what)
        return data.quantized_top1(hw, result.entries())

    def within(accuracy: float) -> bool:
        return accuracy + margin / 100 >= result.baseline

    parts = {"weights": (result.weights, weight_counts),
             "activations": (result.activations, output_counts)}
    start = score("every layer at 8 bits")
    moves = []
    for part, (bits, counts) in parts.items():
        for name in bits:
            measured = []
            for width in range(START_BITS - 1, MIN_BITS - 1, -1):
                bits[name] = width
                accuracy = score(f"sensitivity {name} {part} {width} bits")
                measured.append((width, accuracy))
                if not within(accuracy):
                    break
            bits[name] = START_BITS
            result.sensitivity[(name, part)] = measured
            previous = start
            for width, accuracy in measured:
                # accuracy lost per bit saved on one value: cheap reductions of big tensors first
                cost = max(previous - accuracy, 0.0) / counts[name]
                moves.append((cost, -width, name, part, width))
                previous = accuracy
    frozen: set[tuple[str, str]] = set()
    costs = {(name, part, width): cost for cost, _, name, part, width in moves}
    while True:  # the cheapest next reduction of any unfrozen layer part, one at a time
        ready = [(cost, -width, name, part, width) for (name, part, width), cost in costs.items()
                 if (name, part) not in frozen and width == parts[part][0][name] - 1]
        if not ready:
            break
        _, _, name, part, width = min(ready)
        bits = parts[part][0]
        bits[name] = width
        accuracy = score(f"combined {name} {part} {width} bits")
        kept = within(accuracy)
        result.steps.append((name, part, width, accuracy, kept))
        if not kept:
            bits[name] = width + 1
            frozen.add((name, part))
    result.accumulators = accumulator_bits(data, hw, result.entries(with_registers=False), batch)
    result.accuracy = score("final design")
    while not within(result.accuracy):  # a running sum beyond the final ones: widen, rescore
        result.accumulators = {name: bits + 2 for name, bits in result.accumulators.items()}
        result.accuracy = score("final design, wider registers")
    return result


def accumulator_bits(data: SearchData, hw: Accelerator, entries: list[dict],
                     batch: int) -> dict[str, int]:
    """Per MAC layer, the fewest two's-complement bits that hold every accumulator value the
    design reaches on the data (run with its own registers widened to 48 bits)."""
    wide = {"bits": 48, "overflow": "saturate"}
    spec = QSpec.model_validate({"layers": [e | {"accumulator": wide, "partial_sum": wide}
                                            for e in entries]})
    run = prepare(data.network, hw, spec, _Batches(data.batches), batch, data.seed)
    largest: dict[str, int] = {}
    for index, (x, _) in enumerate(data.batches):
        for quant, _, outcome in run.propagate(x, np.random.default_rng([data.seed, 0, index])):
            if outcome.acc is not None and quant.plan is not None and quant.plan.is_integer:
                reach = max(-int(outcome.acc.min()), int(outcome.acc.max()), 1)
                largest[quant.layer.name] = max(largest.get(quant.layer.name, 1), reach)
    return {name: reach.bit_length() + 1 for name, reach in largest.items()}


def design_costs(network, hw: Accelerator, entries: list[dict]) -> tuple[int, float]:
    """(weight memory bits, MAC energy in pJ of one inference) of a design on `hw`: each MAC
    layer's weight count times its weight width, and its MACs times the energy table's figure
    for its wider operand."""
    from hwconfigs.schema import operand_bits
    from rsim.schedule.from_network import network_work

    spec = QSpec.model_validate({"layers": entries})
    datapaths = {layer.name: spec.datapath_for(layer.name, hw.datapath) for layer in network.layers}
    work = {w.name: w for w in network_work(network, batch=1)}
    bits, energy = 0, 0.0
    for layer in mac_layers(network):
        datapath = datapaths[layer.name]
        weights = layer.params.get("weight", layer.params.get("constant"))
        bits += int(weights.size) * datapath.weights.bits
        energy += work[layer.name].macs * hw.energy.mac_energy_pj(operand_bits(datapath))
    return bits, energy
