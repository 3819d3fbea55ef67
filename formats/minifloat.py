"""Minifloats: sign, E exponent bits, M mantissa bits, a bias, optional subnormals and a rule for
special values; plus Ristretto's minifloat, which is a different value set (see RistrettoMinifloat).

Special-value rules (`special=`):
  ieee  top exponent code is inf (mantissa 0) and NaN (otherwise); overflow gives +-inf.
  fn    no inf; the all-ones code (S.1..1.1..1) is NaN; overflow gives NaN (OCP e4m3fn).
  fnuz  no inf, no -0; the code 1.0..0.0..0 (negative zero) is NaN; overflow gives NaN.
  none  every code is a number; overflow saturates (OCP fp6/fp4, "fn" in ml_dtypes' names).
Every derived property (max, smallest normal, eps, layout, special codes) comes from `_value`,
the one decoder of a magnitude code, so a new format is one line in the alias table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from formats.base import Field, ScalarFormat, check_int
from formats.errors import RsimError
from formats.float_nb import (OVERFLOW_INF, OVERFLOW_NAN, OVERFLOW_SATURATE, float_codes_array,
                              float_values_array, ristretto_values_array)
from formats.modes import Overflow, Rounding
from formats.spec import Args, alias_of, register, register_alias

SPECIALS = ("ieee", "fn", "fnuz", "none")
MAX_EXP_BITS = 11
MAX_MAN_BITS = 52
EXP_RANGE = 1000  # every value and quantum stays a normal float64: |exponent| <= 1000 + M


@dataclass(frozen=True, repr=False)
class Minifloat(ScalarFormat):
    """A binary floating-point format with E exponent bits and M mantissa bits (hidden bit not
    counted); bias defaults to 2^(E-1) - 1."""

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    special: str = "ieee"

    def __post_init__(self) -> None:
        e = check_int(self.exp_bits, "float exponent bits E", 1, MAX_EXP_BITS)
        m = check_int(self.man_bits, "float mantissa bits M", 0, MAX_MAN_BITS)
        object.__setattr__(self, "exp_bits", e)
        object.__setattr__(self, "man_bits", m)
        bias = (1 << (e - 1)) - 1 if self.bias is None else check_int(self.bias, "float bias")
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "subnormals", bool(self.subnormals))
        if self.special not in SPECIALS:
            raise RsimError(f"float special must be one of {', '.join(SPECIALS)}, "
                            f"got {self.special!r}")
        if self.special == "ieee" and (e < 2 or m < 1):
            raise RsimError(f"float<{e},{m}> special=ieee needs E >= 2 and M >= 1 (inf and NaN "
                            "take the top exponent code); use special=fn or none")
        if e + m + 1 > 63:
            raise RsimError(f"float<{e},{m}>: at most 63 bits (E + M <= 62), got {e + m + 1}")
        if self._max_magnitude_code < (1 << m):
            raise RsimError(f"float<{e},{m},special={self.special}> has no normal numbers")
        if self.min_exp - m < -EXP_RANGE or self.max_exp > EXP_RANGE:
            raise RsimError(f"float<{e},{m},bias={bias}>: exponents must stay within "
                            f"+-{EXP_RANGE} (bias too large or too small)")

    # -- the one decoder every property derives from ---------------------------------------

    def _value(self, magnitude_code: int) -> float:
        """The value of a non-special magnitude code (sign bit clear)."""
        e_field, m = divmod(magnitude_code, 1 << self.man_bits)
        if e_field == 0:
            return math.ldexp(m, self.min_exp - self.man_bits) if self.subnormals else 0.0
        return math.ldexp((1 << self.man_bits) + m, e_field - self.bias - self.man_bits)

    @property
    def _max_magnitude_code(self) -> int:
        all_ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.special == "ieee":
            return all_ones - (1 << self.man_bits)  # the top exponent code is inf/NaN
        if self.special == "fn":
            return all_ones - 1  # all ones is NaN
        return all_ones

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def min_exp(self) -> int:
        """Exponent of the smallest normal binade (1 - bias)."""
        return 1 - self.bias

    @property
    def max_exp(self) -> int:
        """Exponent of the largest binade."""
        return (self._max_magnitude_code >> self.man_bits) - self.bias

    @property
    def max(self) -> float:
        return self._value(self._max_magnitude_code)

    @property
    def min(self) -> float:
        return -self.max

    @property
    def smallest_normal(self) -> float:
        return self._value(1 << self.man_bits)

    @property
    def smallest_positive(self) -> float:
        return self._value(1) if self.subnormals and self.man_bits else self.smallest_normal

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value (2^-M)."""
        return math.ldexp(1.0, -self.man_bits)

    @property
    def has_nan(self) -> bool:
        return self.special != "none"

    @property
    def has_inf(self) -> bool:
        return self.special == "ieee"

    @property
    def inf_code(self) -> int:
        """Bit pattern of +inf, or -1 without inf."""
        return (self._max_magnitude_code + 1) if self.special == "ieee" else -1

    @property
    def nan_code(self) -> int:
        """Bit pattern of the (positive, quiet) NaN, or -1 without NaN."""
        sign_bit = 1 << (self.exp_bits + self.man_bits)
        return {"ieee": self.inf_code | (1 << max(self.man_bits - 1, 0)), "fn": sign_bit - 1,
                "fnuz": sign_bit, "none": -1}[self.special]

    def layout(self) -> tuple[Field, ...]:
        return (Field("sign", 1), Field("exponent", self.exp_bits),
                Field("mantissa", self.man_bits))

    def describe(self) -> str:
        subnormal = "with subnormals" if self.subnormals else "no subnormals (flush to zero)"
        special = {"ieee": "inf and NaN (IEEE-like)", "fn": "NaN but no inf (finite)",
                   "fnuz": "NaN but no inf and no -0", "none": "no inf or NaN"}[self.special]
        return (f"minifloat, {self.exp_bits} exponent bits, {self.man_bits} mantissa bits, "
                f"bias {self.bias}, {subnormal}, {special}")

    def __str__(self) -> str:
        alias = alias_of(self)
        if alias:
            return alias
        options = [str(self.exp_bits), str(self.man_bits)]
        if self.bias != (1 << (self.exp_bits - 1)) - 1:
            options.append(f"bias={self.bias}")
        if not self.subnormals:
            options.append("subnormals=false")
        if self.special != "ieee":
            options.append(f"special={self.special}")
        return f"float<{','.join(options)}>"

    # -- quantization --------------------------------------------------------------------------

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        if overflow is Overflow.WRAP:
            raise RsimError(f"{self}: overflow=wrap is for integers; floats take overflow=None "
                            "(the format's own rule), saturate or saturate_symmetric")

    def nb_params(self, overflow: str | Overflow | None = None) -> tuple:
        """Plain scalars for `formats.float_nb.round_float` (see its docstring), in its order:
        (man_bits, min_exp, max_exp, max_value, subnormals, overflow_rule, signed_zero)."""
        over = None if overflow is None else self._modes("nearest_even", overflow)[1]
        if over is not None or self.special == "none":
            rule = OVERFLOW_SATURATE
        else:
            rule = OVERFLOW_INF if self.special == "ieee" else OVERFLOW_NAN
        return (self.man_bits, self.min_exp, self.max_exp, self.max, self.subnormals, rule,
                self.special != "fnuz")

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        return float_values_array(flat, self.nb_params(overflow), rounding.code, u, out)

    def _encode(self, flat, shape, rounding: Rounding, overflow, u):
        codes = np.empty(flat.size, dtype=np.int64)
        bit_params = (self.bias, 1 << (self.exp_bits + self.man_bits), self.inf_code,
                      self.nan_code)
        nans = float_codes_array(flat, self.nb_params(overflow), bit_params, rounding.code, u,
                                 codes)
        return codes, nans

    def _decode(self, codes, shape):
        e, m = self.exp_bits, self.man_bits
        magnitude = codes & ((1 << (e + m)) - 1)
        e_field = magnitude >> m
        mantissa = (magnitude & ((1 << m) - 1)).astype(np.float64)
        normal = np.ldexp(mantissa + (1 << m), (e_field - self.bias - m).astype(np.int32))
        subnormal = np.ldexp(mantissa, self.min_exp - m) if self.subnormals else 0.0 * mantissa
        values = np.where(e_field == 0, subnormal, normal)
        values[magnitude > self._max_magnitude_code] = np.inf
        if self.special == "ieee":
            values[(e_field == (1 << e) - 1) & (magnitude & ((1 << m) - 1) != 0)] = np.nan
        elif self.special == "fn":
            values[magnitude == self.nan_code] = np.nan
        elif self.special == "fnuz":
            values[codes == self.nan_code] = np.nan
        return np.where(codes >> (e + m) != 0, -values, values)


@dataclass(frozen=True, repr=False)
class RistrettoMinifloat(ScalarFormat):
    """Ristretto's MINIFLOAT trimming, exactly (GPU semantics, both tie rules).

    Every exponent code is a normal number (bias 2^(E-1)-1, no inf/NaN, no subnormals);
    magnitudes below 2^-bias are flushed to +0 by truncation; larger exponents saturate to
    (2-2^-M)*2^(2^(E-1)); a mantissa that rounds up is not renormalised, so the top binade can
    produce 2^(2^(E-1)+1). Inputs are cast to float32 first, as Ristretto's blobs are float32.
    Ristretto's CPU build stops trimming a whole buffer at its first zero/underflowing element
    (an early `return` in a loop); rsim does not reproduce that bug.

    Ristretto never stores codes, and its value set (2^(E+M+1) + 3 values) does not fit 1+E+M
    bits, so `encode` gives signed ordinals: 0 is zero, k > 0 is the k-th positive value.
    """

    exp_bits: int
    man_bits: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "exp_bits", check_int(self.exp_bits,
                                                       "ristretto_minifloat E", 1, 8))
        object.__setattr__(self, "man_bits", check_int(self.man_bits,
                                                       "ristretto_minifloat M", 0, 23))

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def _normal_count(self) -> int:
        return 1 << (self.exp_bits + self.man_bits)

    def _values(self, ordinals: np.ndarray) -> np.ndarray:
        """Values of positive ordinals (1 .. normal_count + 1) as Ristretto stores them (float32).

        Ordinal k is exponent code e and mantissa m with k - 1 = e * 2^M + m; the last one,
        e = 2^E and m = 0, is the carry value 2^(2^E - bias)."""
        e_field, m = np.divmod(np.asarray(ordinals, dtype=np.int64) - 1, 1 << self.man_bits)
        exponent = (e_field - self.bias - self.man_bits).astype(np.int32)
        with np.errstate(over="ignore"):
            return np.ldexp((m + (1 << self.man_bits)).astype(np.float64),
                            exponent).astype(np.float32).astype(np.float64)

    def _value(self, ordinal: int) -> float:
        return float(self._values(np.array([ordinal]))[0])

    @property
    def bits(self) -> int:
        return self.exp_bits + self.man_bits + 2

    @property
    def code_range(self) -> tuple[int, int]:
        return -(self._normal_count + 1), self._normal_count + 1

    @property
    def max(self) -> float:
        """The saturation value (2-2^-M)*2^(2^(E-1)); a mantissa carry can still give 2x that
        binade's base (see the class docstring). For E = 8 float32 storage turns that top
        binade into inf, so the largest finite value is the top of the binade below."""
        top = self._value(self._normal_count)
        return top if math.isfinite(top) else self._value(self._normal_count - (1 << self.man_bits))

    @property
    def min(self) -> float:
        return -self.max

    @property
    def smallest_positive(self) -> float:
        return self._value(1)

    @property
    def eps(self) -> float:
        return math.ldexp(1.0, -self.man_bits)

    def layout(self) -> tuple[Field, ...]:
        return (Field("signed ordinal", self.bits),)

    def describe(self) -> str:
        return (f"Ristretto minifloat, {self.exp_bits} exponent bits, {self.man_bits} mantissa "
                f"bits, bias {self.bias}: no subnormals, no inf/NaN, truncating flush to zero, "
                "saturating, carry not renormalised")

    def __str__(self) -> str:
        return f"ristretto_minifloat<{self.exp_bits},{self.man_bits}>"

    _ROUNDINGS = (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY, Rounding.STOCHASTIC)

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        if rounding not in self._ROUNDINGS:
            raise RsimError(f"{self}: rounding must be nearest_even (Ristretto GPU), "
                            f"nearest_away (Ristretto CPU) or stochastic, got {rounding.value}")
        if overflow not in (None, Overflow.SATURATE):
            raise RsimError(f"{self}: Ristretto's minifloat always saturates; overflow must be "
                            f"None or saturate, got {overflow.value}")

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        return ristretto_values_array(flat, self.exp_bits, self.man_bits, rounding.code, u, out)

    def _encode(self, flat, shape, rounding: Rounding, overflow, u):
        values = np.empty(flat.size)
        nans = self._quantize(flat, shape, rounding, overflow, u, values)
        magnitude = np.abs(values)
        finite = np.isfinite(magnitude) & (magnitude > 0)
        exponent = np.frexp(magnitude[finite])[1] - 1
        mantissa = np.ldexp(magnitude[finite], self.man_bits - exponent) - (1 << self.man_bits)
        ordinals = np.zeros(flat.size, dtype=np.int64)
        ordinals[finite] = ((exponent + self.bias) << self.man_bits) + mantissa.astype(np.int64) + 1
        # E = 8: float32 turns the whole top binade into inf; it gets that binade's first ordinal
        ordinals[np.isinf(magnitude)] = (((1 << self.exp_bits) - 1) << self.man_bits) + 1
        return np.where(values < 0, -ordinals, ordinals), nans

    def _decode(self, codes, shape):
        magnitude = np.abs(codes)
        values = np.where(magnitude == 0, 0.0, self._values(np.maximum(magnitude, 1)))
        return np.where(codes < 0, -values, values)


def _build_float(args: Args) -> Minifloat:
    e, m = args.expect_positional(("E", "M"))
    bias = args.take("bias", None, (int,), "an integer")
    subnormals = args.take("subnormals", True, (bool,), "true or false")
    special = args.take("special", "ieee", (str,), "|".join(SPECIALS))
    args.done(("bias", "subnormals", "special"))
    return Minifloat(args.integer(e, "E"), args.integer(m, "M"), bias, subnormals, special)


def _build_ristretto(args: Args) -> RistrettoMinifloat:
    e, m = args.expect_positional(("E", "M"))
    args.done(())
    return RistrettoMinifloat(args.integer(e, "E"), args.integer(m, "M"))


register("float", _build_float)
register("ristretto_minifloat", _build_ristretto)
for _name, _fmt in {
    "fp32": Minifloat(8, 23),
    "fp16": Minifloat(5, 10),
    "bf16": Minifloat(8, 7),
    "fp8_e4m3fn": Minifloat(4, 3, special="fn"),
    "fp8_e5m2": Minifloat(5, 2),
    "fp8_e4m3fnuz": Minifloat(4, 3, bias=8, special="fnuz"),
    "fp8_e5m2fnuz": Minifloat(5, 2, bias=16, special="fnuz"),
    "fp6_e3m2fn": Minifloat(3, 2, special="none"),
    "fp6_e2m3fn": Minifloat(2, 3, special="none"),
    "fp4_e2m1fn": Minifloat(2, 1, special="none"),
}.items():
    register_alias(_name, _fmt)
