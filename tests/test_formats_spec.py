"""The spec grammar, canonical strings, value semantics, pydantic round trips, errors a user can
cause, and the `rsim format` command."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import (Affine, FixedPoint, Format, FormatField, Minifloat, MXFormat, PowerOfTwo,
                     RistrettoMinifloat, RsimError, parse)
from formats.spec import _ALIASES
from rsim.cli import cli

GENERIC_SPECS = [
    "fixed<8,4>", "fixed<16,-3>", "ufixed<8,10>", "float<4,3,special=fn>", "float<5,2,bias=13>",
    "float<6,3,subnormals=false>", "float<3,1,bias=2,subnormals=false,special=fnuz>",
    "ristretto_minifloat<4,3>", "pow2<-8,-1,zero=false>", "pow2<-3,3>",
    "affine<int8,scale=0.05,zp=-3>", "affine<uint8,scale=[0.5,0.25],zp=[1,2],axis=1>",
    "affine<int4,scale=2.5e-07>", "mx<fp8_e4m3fn,block=16>", "mx<fixed<8,6>,axis=0>",
]


@pytest.mark.parametrize("spec", list(_ALIASES) + GENERIC_SPECS)
def test_canonical_string_parses_back_to_an_equal_hashable_value(spec: str) -> None:
    fmt = parse(spec)
    again = parse(str(fmt))
    assert again == fmt and hash(again) == hash(fmt) and str(again) == str(fmt)
    assert fmt.bits >= 1 and fmt.max > 0 and fmt.min < fmt.max and fmt.describe()


def test_aliases_name_the_formats_they_stand_for() -> None:
    assert parse("int8") == FixedPoint(8, 0) == parse("fixed<8,0>")
    assert str(parse("fixed<8,0>")) == "int8"
    assert parse("uint8") == FixedPoint(8, 0, signed=False)
    assert parse("fp16") == Minifloat(5, 10) and str(Minifloat(5, 10)) == "fp16"
    assert parse("bf16") == parse("float<8,7,bias=127,special=ieee,subnormals=true>")
    assert parse("fp8_e4m3fnuz") == Minifloat(4, 3, bias=8, special="fnuz")
    assert parse("fp4_e2m1fn") == Minifloat(2, 1, special="none")
    assert parse("mxfp4") == MXFormat(Minifloat(2, 1, special="none"))
    assert parse("mxint8") == MXFormat(FixedPoint(8, 6))
    assert parse(" fixed< 8 , 4 > ") == parse("fixed<8,4>")


def test_formats_are_immutable_values() -> None:
    fmt = parse("fixed<8,4>")
    with pytest.raises(AttributeError):
        fmt.bits = 9  # type: ignore[misc]
    assert {parse("fp16"), parse("float<5,10>"), Minifloat(5, 10)} == {Minifloat(5, 10)}
    assert parse("fixed<8,4>") != parse("ufixed<8,4>")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(0, 10), st.integers(-4, 4), st.booleans(),
       st.sampled_from(["ieee", "fn", "fnuz", "none"]))
def test_every_valid_minifloat_round_trips(e_bits, m_bits, bias_shift, subnormals, special):
    try:
        fmt = Minifloat(e_bits, m_bits, (1 << (e_bits - 1)) - 1 + bias_shift, subnormals, special)
    except RsimError:
        return
    assert parse(str(fmt)) == fmt


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.integers(-512, 512), st.booleans())
def test_every_valid_fixed_point_round_trips(bits, fl, signed):
    if not signed and bits > 63:
        return
    fmt = FixedPoint(bits, fl, signed)
    assert parse(str(fmt)) == fmt


class _Datapath(pydantic.BaseModel):
    weights: FormatField
    accumulator: FormatField = parse("int32")


def test_pydantic_fields_accept_specs_and_serialise_to_canonical_strings() -> None:
    model = _Datapath(weights="float<4,3,special=fn>")
    assert model.weights == parse("fp8_e4m3fn")
    assert model.model_dump() == {"weights": "fp8_e4m3fn", "accumulator": "int32"}
    assert _Datapath.model_validate_json(model.model_dump_json()) == model
    assert _Datapath(weights=parse("pow2<-8,-1>")).weights == PowerOfTwo(-8, -1)
    assert _Datapath.model_json_schema()["properties"]["weights"]["type"] == "string"
    with pytest.raises(pydantic.ValidationError, match="mantissa bits"):
        _Datapath(weights="float<4,99>")


@pytest.mark.parametrize("spec,message", [
    ("fixed<8", "expected ',' or '>'"),
    ("fixed<8>", "expected 2 positional"),
    ("fixed<0,4>", r"fixed bits must be in \[1, 64\]"),
    ("ufixed<64,0>", r"ufixed bits must be in \[1, 63\]"),
    ("float<12,3>", r"exponent bits E must be in \[1, 11\]"),
    ("float<4,3,special=weird>", "special must be one of ieee, fn, fnuz, none"),
    ("float<4,0>", "special=ieee needs E >= 2 and M >= 1"),
    ("float<4,3,color=red>", "unknown option.*valid: bias, subnormals, special"),
    ("float<8,23,bias=-2000>", "exponents must stay within"),
    ("quux<1,2>", "unknown format 'quux'"),
    ("fp7", "malformed format spec 'fp7'"),
    ("affine<int8,scale=0>", "scale must be a finite number > 0"),
    ("affine<int8,scale=-0.5>", "scale must be a finite number > 0"),
    ("affine<int8,zp=3>", "affine needs scale"),
    ("affine<fp16,scale=1>", "affine base must be an integer format"),
    ("affine<int8,scale=1,zp=300>", r"zero point of int8 must be in \[-128, 127\]"),
    ("affine<int8,scale=[1,2]>", "need axis=A"),
    ("pow2<3,-3>", "EMAX must be >= EMIN"),
    ("mx<pow2<-2,2>>", "mx element must be a minifloat"),
    ("ristretto_minifloat<9,3>", r"ristretto_minifloat E must be in \[1, 8\]"),
])
def test_bad_specs_raise_one_error_that_says_what_is_valid(spec: str, message: str) -> None:
    with pytest.raises(RsimError, match=message):
        parse(spec)


@pytest.mark.parametrize("spec", ["fixed<8,4>", "fp4_e2m1fn", "fp6_e3m2fn", "pow2<-8,-1>",
                                  "affine<int8,scale=0.1>", "ristretto_minifloat<4,3>"])
def test_nan_into_a_format_without_nan_is_an_error(spec: str) -> None:
    """Policy: NaN has no code there, so rsim refuses rather than inventing a value."""
    with pytest.raises(RsimError, match="NaN input.*no NaN code"):
        parse(spec).quantize([1.0, np.nan])
    with pytest.raises(RsimError, match="no NaN code"):
        parse(spec).encode([np.nan])


def test_nan_into_formats_with_nan_stays_nan() -> None:
    for spec in ("fp16", "fp8_e4m3fn", "fp8_e5m2fnuz", "mxfp4"):
        assert np.isnan(parse(spec).quantize([np.nan, 1.0])[0])


def test_unknown_modes_and_bad_arguments_are_named() -> None:
    fmt = parse("fixed<8,4>")
    with pytest.raises(RsimError, match="unknown rounding 'round_half'.*nearest_even"):
        fmt.quantize([1.0], rounding="round_half")
    with pytest.raises(RsimError, match="unknown overflow 'clip'.*saturate, wrap"):
        fmt.quantize([1.0], overflow="clip")
    with pytest.raises(RsimError, match="dtype must be float32 or float64"):
        fmt.quantize([1.0], dtype=np.int8)
    with pytest.raises(RsimError, match=r"codes must lie in \[-128, 127\]"):
        fmt.decode([200])
    with pytest.raises(RsimError, match="codes must be integers"):
        fmt.decode([1.5])
    with pytest.raises(RsimError, match="affine formats saturate"):
        parse("affine<int8,scale=1>").quantize([1.0], overflow="wrap")


def test_every_format_family_is_a_format() -> None:
    for cls in (FixedPoint, Minifloat, RistrettoMinifloat, PowerOfTwo, Affine, MXFormat):
        assert issubclass(cls, Format)


def test_format_command_describes_a_format_like_finfo() -> None:
    result = CliRunner().invoke(cli, ["format", "fp8_e4m3fn"])
    assert result.exit_code == 0, result.output
    for text in ("fp8_e4m3fn", "448", "smallest normal", "0.015625 (2^-6)",
                 "smallest subnormal", "sign:1 | exponent:4 | mantissa:3", "0 1111 110", "nan"):
        assert text in result.output


def test_format_command_reports_a_bad_spec_in_one_line_with_exit_code_2() -> None:
    result = CliRunner().invoke(cli, ["format", "float<4,99>"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "rsim: error:" in result.output


@pytest.mark.parametrize("spec", ["mxfp4", "affine<int8,scale=[0.5,0.25],axis=0>", "fp32",
                                  "ristretto_minifloat<8,23>", "fixed<64,0>",
                                  "pow2<0,0,zero=false>"])
def test_format_command_handles_every_family(spec: str) -> None:
    result = CliRunner().invoke(cli, ["format", spec])
    assert result.exit_code == 0, result.output
    assert "sample codes" in result.output
