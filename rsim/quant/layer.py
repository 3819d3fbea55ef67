"""`LayerQuant`: one layer's complete quantized state, and how the accelerator runs the layer.

How a layer runs is its op's declaration (`rsim.ops`): on fixed-point codes its `integer`
model; on minifloat tensors, or into float registers (Ristretto's float accumulation of
fixed-point operands), its `minifloat` model (the MAC kernels), or, for selections and
moves (format-keeping ops) and for what the float unit computes (`float_unit`: sums, averages,
concatenation), the exact float64 result rounded once to the output format. A layer whose op has
no model for its input formats runs in float64 on the decoded inputs and is quantized to the
output format: it is marked `float_emulated`.

Shared stages the op models call: `requantize` (accumulator codes to the output format by one
rounding shift, saturating), `output_stage` (that, for a MAC layer's accumulators) and
`rounded_output` (float values rounded once to the output format).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import kernels
from formats import FixedPoint, Format
from hwconfigs.schema import Datapath
from kernels.plan import ReductionPlan
from kernels.requant import requantize_to_range
from rsim.network import Layer
from rsim.ops import OpSpec
from rsim.quant.tensor import Outcome, QTensor, quantize


@dataclass(frozen=True)
class Constants:
    """A MAC layer's weights and bias as the datapath holds them."""

    weights: np.ndarray  # int64 codes (integer datapath) or float64 values (minifloat)
    weight_fmt: Format
    weight_fl: int  # fractional length of the weight codes (integer datapath; 0 otherwise)
    bias: np.ndarray | None  # codes at the accumulator's scale, or float64 register values
    bias_fmt: Format | None
    bias_saturations: int  # bias values that saturated when loaded into their register


@dataclass(frozen=True)
class LayerQuant:
    """A layer's resolved quantization: formats, reduction plan (MAC layers: the one its
    schedule carries), quantized constants, and whether it is float-emulated."""

    layer: Layer
    spec: OpSpec
    datapath: Datapath
    in_fmts: tuple[Format, ...]
    out_fmt: Format
    plan: ReductionPlan | None = None
    constants: Constants | None = None
    float_emulated: bool = False

    # -- the constants, for the models and the writers ----------------------------------------

    @property
    def weights(self) -> np.ndarray | None:
        return None if self.constants is None else self.constants.weights

    @property
    def weight_fmt(self) -> Format | None:
        return None if self.constants is None else self.constants.weight_fmt

    @property
    def bias(self) -> np.ndarray | None:
        return None if self.constants is None else self.constants.bias

    @property
    def bias_saturations(self) -> int:
        return 0 if self.constants is None else self.constants.bias_saturations

    @property
    def integer(self) -> bool:
        """Whether the layer's inputs are fixed-point codes."""
        return isinstance(self.in_fmts[0], FixedPoint) if self.in_fmts else False

    @property
    def rounding(self) -> str:
        return self.datapath.requant_rounding.value

    @property
    def acc_fl(self) -> int:
        """Fractional length of the accumulator of an integer MAC layer: the sum of its two
        operands' (the weights', or the second activation's for a product of two activations)."""
        second = self.in_fmts[1].fl if self.constants is None else self.constants.weight_fl
        return self.in_fmts[0].fl + second

    def commutes_with(self, rounding: str) -> bool:
        """Whether this layer on inputs quantized with `rounding` gives exactly its float output
        quantized the same way (deterministic rounding is monotone and keeps 0 at 0)."""
        return (self.spec.commutes and rounding != "stochastic" and len(self.in_fmts) == 1
                and self.out_fmt == self.in_fmts[0])

    def formats(self) -> dict[str, str]:
        """Role -> format spec, for tables and traces."""
        roles = {"input": str(self.in_fmts[0]) if self.in_fmts else "", "output": str(self.out_fmt)}
        if self.constants is not None:
            roles["weights"] = str(self.constants.weight_fmt)
            if self.constants.bias_fmt is not None:
                roles["bias"] = str(self.constants.bias_fmt)
        if self.plan is not None:
            roles["accumulator"] = str(self.plan.accumulator)
            if self.plan.partial_sum is not None:
                roles["partial_sum"] = str(self.plan.partial_sum)
        return roles

    # -- running ------------------------------------------------------------------------------

    def run(self, inputs: list[QTensor], rng: np.random.Generator | None = None) -> Outcome:
        """The layer on simulated inputs in their producers' formats (re-quantized to `in_fmts`
        as they enter, where the datapath names an input format)."""
        inputs = [t if t.fmt == fmt else quantize(t.values(), fmt, self.rounding, rng)[0]
                  for t, fmt in zip(inputs, self.in_fmts, strict=True)]
        spec = self.spec
        if not self.float_emulated:
            if self.integer and (self.plan is None or self.plan.is_integer):
                return spec.integer(self, inputs, rng)
            if spec.minifloat is not None:
                return spec.minifloat(self, inputs, rng)
        # float-emulated, or a selection / float-unit result on minifloat tensors: the exact
        # float64 result, rounded once to the output format
        return self.rounded_output(self.layer.forward(*(t.values() for t in inputs),
                                                      dtype=np.float64), rng)

    def run_changed(self, inputs: list[QTensor], before: list[QTensor], outcome: Outcome,
                    rng: np.random.Generator | None = None) -> Outcome:
        """`run(inputs)`, given the `outcome` of `run(before)` on inputs of the same formats
        that differ in a few codes: an op with an incremental integer model (`changed`) reuses
        the outcome when it provably can; anything else runs afresh."""
        changed = self.spec.integer_changed
        if (changed is not None and self.integer and not self.float_emulated
                and (self.plan is None or self.plan.is_integer)
                and all(a.fmt == b.fmt == fmt for a, b, fmt
                        in zip(inputs, before, self.in_fmts, strict=True))):
            result = changed(self, inputs, before, outcome, rng)
            if result is not None:
                return result
        return self.run(inputs, rng)

    # -- stages the op models share -----------------------------------------------------------

    def requantize(self, acc: np.ndarray, acc_fl: int, rng) -> tuple[QTensor, np.ndarray]:
        """Integer codes with `acc_fl` fractional bits to the output format: one rounding shift,
        then saturation; the mask marks saturated outputs."""
        fmt = self.out_fmt
        if not isinstance(fmt, FixedPoint):
            return quantize(acc * 2.0 ** -acc_fl, fmt, self.rounding, rng)
        codes, clipped = requantize_to_range(acc, acc_fl - fmt.fl, fmt.min_code, fmt.max_code,
                                             rounding=self.datapath.requant_rounding, rng=rng)
        return QTensor(codes, fmt), clipped

    def output_stage(self, acc: np.ndarray, stats: kernels.AccumulatorStats, rng) -> Outcome:
        """A MAC layer's integer accumulators (acc_fl fractional bits) in the output format."""
        out, clipped = self.requantize(acc, self.acc_fl, rng)
        return Outcome(out, clipped, acc, stats)

    def rounded_output(self, values: np.ndarray, rng, acc: np.ndarray | None = None) -> Outcome:
        """Float values rounded once to the output format (saturating)."""
        out, clipped = quantize(values, self.out_fmt, self.rounding, rng)
        return Outcome(out, clipped, acc)

    def saturated_codes(self, codes: np.ndarray) -> Outcome:
        """Exact integer results at the output format's scale, saturated to its range."""
        fmt = self.out_fmt
        clipped = np.clip(codes, fmt.min_code, fmt.max_code)
        return Outcome(QTensor(clipped.astype(fmt.code_dtype), fmt), clipped != codes)
