"""The accelerator description: a pydantic model of the MAC array, datapath, memory and energy.

Every model forbids unknown keys, so a typo is an error, not a silently ignored setting.

Datapath operand formats are spec strings of `formats` (e.g. "int8", "fp8_e4m3fn"), or a
*dynamic* fixed point written as a mapping `{bits: 8, fl: dynamic}`: the word width is fixed by
the hardware, the fractional length is chosen per layer by the simulator's calibration
(Ristretto's dynamic fixed point). `DynamicFixed.at(fl)` gives the concrete format once fl is
known.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    PositiveInt,
    Tag,
    model_validator,
)

from formats import FormatField
from formats.fixed import FixedPoint
from formats.modes import Rounding
from formats.register import Register

Dataflow = Literal["os", "ws", "is"]
BiasMode = Literal["preload", "post"]
NonlinearUnit = Literal["float", "integer"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Array(StrictModel):
    """The R x C MAC array and the dataflow that decides what stays in each PE."""

    rows: PositiveInt = Field(description="PE rows R; K (WS/IS) or M (OS) is folded onto them")
    cols: PositiveInt = Field(description="PE columns C")
    dataflow: Dataflow = Field(description="os: outputs stay; ws: weights stay; is: inputs stay")
    clock_mhz: PositiveFloat = Field(description="clock frequency, MHz (cycles -> seconds)")


class DynamicFixed(StrictModel):
    """Fixed point of `bits` bits whose fractional length is chosen per layer (Ristretto DFP)."""

    bits: int = Field(ge=2, le=32, description="word width including the sign bit")
    fl: Literal["dynamic"] = Field(description="always 'dynamic': calibrated per layer")
    signed: bool = Field(True, description="two's complement (True) or unsigned")

    def at(self, fl: int) -> FixedPoint:
        """The concrete fixed-point format with fractional length `fl`."""
        return FixedPoint(self.bits, fl, self.signed)


def _operand_kind(value: Any) -> str:
    return "dynamic" if isinstance(value, (dict, DynamicFixed)) else "spec"


OperandFormat = Annotated[
    Annotated[FormatField, Tag("spec")] | Annotated[DynamicFixed, Tag("dynamic")],
    Discriminator(_operand_kind),
]


class Datapath(StrictModel):
    """Word formats and the accumulation rules of the MAC datapath."""

    weights: OperandFormat = Field(description="weight format spec, or {bits, fl: dynamic}")
    activations: OperandFormat = Field(
        description="activation (layer input/output) format spec, or {bits, fl: dynamic}")
    bias: OperandFormat = Field(description="bias format spec, or {bits, fl: dynamic}")
    input: OperandFormat | None = Field(
        None, description="the format a layer re-quantizes its inputs to as they enter it "
                          "(Ristretto's bw_layer_in/fl_layer_in); none = its producers' format")
    product: FormatField | None = Field(
        None, description="format products are rounded to before accumulation; none = exact")
    accumulator: Register = Field(description="the PE/column accumulator")
    partial_sum: Register | None = Field(
        None, description="partial-sum buffer adding WS/IS row-fold results; none = the "
                          "accumulator's precision")
    requant_rounding: Rounding = Field(
        Rounding.NEAREST_EVEN, description="rounding of the accumulator to the output format")
    bias_mode: BiasMode = Field(
        "post", description="preload: bias starts the accumulator; post: added to the result")
    nonlinear: NonlinearUnit = Field(
        "float", description="softmax, layernorm and gelu on fixed-point codes: float (computed "
                             "in float64, rounded once to the output format) or integer (I-BERT's "
                             "integer-only exp, square root and erf polynomial: kernels."
                             "intnonlinear)")

    @model_validator(mode="after")
    def _product_on_float_datapaths(self) -> Datapath:
        if self.product is not None and self.accumulator.is_integer:
            raise ValueError("product: rounding products to a format applies to float "
                             "accumulators; an integer datapath's products are exact")
        return self


HOROWITZ_MAC_PJ = {8: 0.3, 16: 0.9, 32: 3.2}
"""Integer MAC energy (pJ) at 45 nm by operand width, from M. Horowitz, "Computing's energy
problem", ISSCC 2014: 8-bit multiply 0.2 pJ and 32-bit multiply 3.1 pJ, 32-bit add 0.1 pJ; the
16-bit multiply (not in the table) is scaled quadratically from 8 bits, 0.8 pJ. Each MAC is one
multiply plus one 32-bit add."""
HOROWITZ_SRAM_PJ_PER_BYTE = 2.5
"""Horowitz 2014: a 64-bit read of a 32 KB SRAM costs 20 pJ, i.e. 2.5 pJ per byte."""
HOROWITZ_DRAM_PJ_PER_BYTE = 162.5
"""Horowitz 2014: a 64-bit DRAM access costs 1.3-2.6 nJ; the low end is 162.5 pJ per byte."""


class Energy(StrictModel):
    """Energy per action; defaults are the 45 nm figures of Horowitz (ISSCC 2014)."""

    mac_pj: dict[PositiveInt, PositiveFloat] = Field(
        default_factory=lambda: dict(HOROWITZ_MAC_PJ),
        description="pJ per MAC keyed by operand width in bits; a MAC uses the smallest "
                    "width >= the wider of its weight and activation")
    sram_pj_per_byte: PositiveFloat = Field(HOROWITZ_SRAM_PJ_PER_BYTE,
                                            description="pJ per SRAM byte read or written")
    dram_pj_per_byte: PositiveFloat = Field(HOROWITZ_DRAM_PJ_PER_BYTE,
                                            description="pJ per DRAM byte read or written")

    def mac_energy_pj(self, width: int) -> float:
        """pJ of one MAC whose wider operand has `width` bits."""
        fitting = [bits for bits in self.mac_pj if bits >= width]
        if not fitting:
            raise ValueError(f"energy.mac_pj has no entry for {width}-bit operands "
                             f"(largest: {max(self.mac_pj)})")
        return self.mac_pj[min(fitting)]


class Memory(StrictModel):
    """On-chip buffers (one SRAM per operand, as SCALE-Sim) and the DRAM interface."""

    ifmap_sram_kib: PositiveFloat = Field(description="input-feature-map SRAM, KiB")
    filter_sram_kib: PositiveFloat = Field(description="weight SRAM, KiB")
    ofmap_sram_kib: PositiveFloat = Field(description="output / partial-sum SRAM, KiB")
    dram_bytes_per_cycle: PositiveFloat = Field(description="DRAM bandwidth, bytes per cycle")


class Accelerator(StrictModel):
    """A complete accelerator description, as loaded from a hwconfigs YAML file."""

    name: str = Field(description="short name; defaults to the file name without .yaml")
    description: str = Field("", description="what design point this is and why")
    array: Array
    datapath: Datapath
    memory: Memory
    energy: Energy = Field(default_factory=Energy)

    @model_validator(mode="after")
    def _energy_covers_operands(self) -> Accelerator:
        self.energy.mac_energy_pj(operand_bits(self.datapath))
        return self


def format_bits(fmt: Any) -> int:
    """Storage width in bits of a datapath operand format (fixed or dynamic)."""
    return fmt.bits


def operand_bits(datapath: Datapath) -> int:
    """Width of the wider MAC operand, which selects the MAC energy."""
    return max(format_bits(datapath.weights), format_bits(datapath.activations))
