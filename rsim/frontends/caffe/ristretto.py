"""Ristretto's per-layer `quantization_param` as a value: `RistrettoParams`.

Field names, meanings and defaults are Ristretto's (pmgysel/caffe, `QuantizationParameter`): a
layer whose fields are unset trims to 32-bit dynamic fixed point with fractional length 16, not
to float. `precision` selects which fields a layer reads: DYNAMIC_FIXED_POINT the bw_*/fl_*
pairs, MINIFLOAT `mant_bits`/`exp_bits`, INTEGER_POWER_OF_2_WEIGHTS `exp_min`/`exp_max` for the
weights and the bw/fl pairs of the activations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from formats.errors import RsimError
from rsim.frontends.caffe import schema

Precision = Literal["DYNAMIC_FIXED_POINT", "MINIFLOAT", "INTEGER_POWER_OF_2_WEIGHTS"]
Rounding = Literal["NEAREST", "STOCHASTIC"]

PRECISIONS: tuple[str, ...] = tuple(schema.ENUMS["QuantizationParameter.Precision"])
ROUNDINGS: tuple[str, ...] = tuple(schema.ENUMS["QuantizationParameter.Rounding"])

# Caffe layer type -> the Ristretto type that quantizes it
RISTRETTO_TYPES: dict[str, str] = {
    "Convolution": "ConvolutionRistretto",
    "InnerProduct": "FcRistretto",
    "Deconvolution": "DeconvolutionRistretto",
    "LRN": "LRNRistretto",
}
FLOAT_TYPES: dict[str, str] = {v: k for k, v in RISTRETTO_TYPES.items()}


@dataclass(frozen=True)
class RistrettoParams:
    """One Ristretto layer's quantization: every field of `quantization_param`, defaults
    applied (a bit width `bw_*` counts the sign bit; `fl_*` is the fractional length)."""

    precision: Precision = "DYNAMIC_FIXED_POINT"
    rounding_scheme: Rounding = "NEAREST"
    bw_layer_in: int = 32
    bw_layer_out: int = 32
    bw_params: int = 32
    fl_layer_in: int = 16
    fl_layer_out: int = 16
    fl_params: int = 16
    mant_bits: int = 23
    exp_bits: int = 8
    exp_min: int = -8
    exp_max: int = -1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise RsimError(
                f"RistrettoParams.precision {self.precision!r} is not one of {list(PRECISIONS)}"
            )
        if self.rounding_scheme not in ROUNDINGS:
            raise RsimError(
                f"RistrettoParams.rounding_scheme {self.rounding_scheme!r} is not one of "
                f"{list(ROUNDINGS)}"
            )
        for field in dataclasses.fields(self)[2:]:
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise RsimError(f"RistrettoParams.{field.name} must be an integer, got {value!r}")
            if field.name.startswith(("bw_", "mant_", "exp_bits")) and value < 0:
                raise RsimError(f"RistrettoParams.{field.name} must be >= 0, got {value}")

    @classmethod
    def from_proto(cls, message) -> RistrettoParams:
        """From a QuantizationParameter message (unset fields take Ristretto's defaults)."""
        values = {f.name: getattr(message, f.name) for f in dataclasses.fields(cls)}
        for name, enum in (("precision", "Precision"), ("rounding_scheme", "Rounding")):
            names = {v: k for k, v in schema.ENUMS[f"QuantizationParameter.{enum}"].items()}
            values[name] = names[values[name]]
        return cls(**values)

    def to_proto(self, message) -> None:
        """Write every field into a QuantizationParameter message (defaults too, so the text
        says everything)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "precision":
                value = schema.ENUMS["QuantizationParameter.Precision"][value]
            elif field.name == "rounding_scheme":
                value = schema.ENUMS["QuantizationParameter.Rounding"][value]
            setattr(message, field.name, value)
