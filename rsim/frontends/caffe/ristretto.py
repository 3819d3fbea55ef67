"""Ristretto's per-layer `quantization_param` as a value: `RistrettoParams`.

Field names, meanings and defaults are Ristretto's (pmgysel/caffe, `QuantizationParameter`): a
layer whose fields are unset trims to 32-bit dynamic fixed point with fractional length 16, not
to float. `precision` selects which fields a layer reads: DYNAMIC_FIXED_POINT the bw_*/fl_*
pairs, MINIFLOAT `mant_bits`/`exp_bits`, INTEGER_POWER_OF_2_WEIGHTS `exp_min`/`exp_max` for the
weights and the bw/fl pairs of the activations.
"""

from __future__ import annotations

import dataclasses
import glob
from dataclasses import dataclass
from typing import Literal

from formats.errors import RsimError
from rsim.frontends.caffe import schema
from rsim.network import ModelQuantization

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


# Ristretto's NEAREST breaks ties away from zero on CPU (C round) and to even on GPU (rint);
# its published results ran on GPU
TIE_RULES = {"gpu": "nearest_even", "cpu": "nearest_away"}
RISTRETTO_HW = "ristretto-caffe"  # the shipped config of Ristretto's own numerics


def _dfp(bits: int, fl: int) -> str:
    return f"fixed<{bits},{fl}>"


def datapath_override(params: RistrettoParams, ties: str = "gpu") -> dict:
    """A Ristretto layer's quantization as datapath keys of a qspec entry (see the README's
    Ristretto section): the layer re-trims its inputs (`input`), trims its weights and bias and
    its output (`activations`), and accumulates in float (the `ristretto-caffe` config)."""
    if ties not in TIE_RULES:
        raise RsimError(f"Ristretto tie rule {ties!r} is not one of {', '.join(TIE_RULES)}")
    rounding = "stochastic" if params.rounding_scheme == "STOCHASTIC" else TIE_RULES[ties]
    if params.precision == "MINIFLOAT":
        fmt = f"ristretto_minifloat<{params.exp_bits},{params.mant_bits}>"
        return {"input": fmt, "activations": fmt, "weights": fmt, "bias": fmt,
                "requant_rounding": rounding}
    entry = {"input": _dfp(params.bw_layer_in, params.fl_layer_in),
             "activations": _dfp(params.bw_layer_out, params.fl_layer_out),
             "requant_rounding": rounding}
    if params.precision == "INTEGER_POWER_OF_2_WEIGHTS":
        # the bias is never trimmed in this mode: it stays float
        return entry | {"weights": f"pow2<{params.exp_min},{params.exp_max},zero=false>",
                        "bias": "fp32"}
    weights = _dfp(params.bw_params, params.fl_params)
    return entry | {"weights": weights, "bias": weights}


def model_quantization(params: dict[str, RistrettoParams], source: str,
                       ties: str = "gpu") -> ModelQuantization | None:
    """What a Ristretto prototxt carries for `rsim simulate` to run it as it is: the
    `ristretto-caffe` config and one qspec entry per Ristretto layer (None without any)."""
    if not params:
        return None
    return ModelQuantization(RISTRETTO_HW, tuple(
        {"match": glob.escape(name), **datapath_override(p, ties)} for name, p in params.items()),
        source)


def ristretto_params(layer: str, input_fmt, weights_fmt, output_fmt,
                     rounding: str) -> RistrettoParams:
    """The `quantization_param` that makes Ristretto trim a layer to these formats (the
    reverse of `datapath_override`); one error when Ristretto has no such precision."""
    from formats import FixedPoint, PowerOfTwo, RistrettoMinifloat

    scheme = "STOCHASTIC" if rounding == "stochastic" else "NEAREST"
    if all(isinstance(f, RistrettoMinifloat) for f in (input_fmt, weights_fmt, output_fmt)) \
            and len({(f.exp_bits, f.man_bits) for f in (input_fmt, weights_fmt, output_fmt)}) == 1:
        return RistrettoParams("MINIFLOAT", scheme, mant_bits=weights_fmt.man_bits,
                               exp_bits=weights_fmt.exp_bits)
    if not (isinstance(input_fmt, FixedPoint) and isinstance(output_fmt, FixedPoint)
            and input_fmt.signed and output_fmt.signed):
        raise RsimError(f"layer {layer!r}: Ristretto trims activations to signed dynamic fixed "
                        f"point or its minifloat, not {input_fmt} -> {output_fmt}")
    activations = {"bw_layer_in": input_fmt.bits, "fl_layer_in": input_fmt.fl,
                   "bw_layer_out": output_fmt.bits, "fl_layer_out": output_fmt.fl}
    if isinstance(weights_fmt, PowerOfTwo) and not weights_fmt.zero:
        return RistrettoParams("INTEGER_POWER_OF_2_WEIGHTS", scheme, exp_min=weights_fmt.exp_min,
                               exp_max=weights_fmt.exp_max, **activations)
    if isinstance(weights_fmt, FixedPoint) and weights_fmt.signed:
        return RistrettoParams("DYNAMIC_FIXED_POINT", scheme, bw_params=weights_fmt.bits,
                               fl_params=weights_fmt.fl, **activations)
    raise RsimError(f"layer {layer!r}: Ristretto has no weight precision for {weights_fmt}; "
                    "use signed fixed point, pow2 without zero, or ristretto_minifloat")
