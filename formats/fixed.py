"""Fixed point: value = code * 2^-fl, code a `bits`-wide two's-complement (or unsigned) integer.

"Integer bits" follow Ristretto's bw/fl: `bits` includes the sign bit and `fl` is the fractional
length, so fixed<8,4> has 4 integer bits (sign included) and steps of 1/16. fl may be negative
(steps of 2^-fl > 1) or larger than bits (all values below 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from formats.base import (
    Field,
    ScalarFormat,
    as_flat,
    check_int,
    int_dtype_for,
    uniforms,
)
from formats.errors import RsimError
from formats.fixed_nb import (
    fixed_codes_array,
    fixed_codes_clipped_array,
    fixed_values_array,
)
from formats.modes import Overflow, Rounding
from formats.spec import Args, alias_of, register, register_alias

MAX_SIGNED_BITS = 64
MAX_UNSIGNED_BITS = 63  # codes are int64
FL_LIMIT = 512


@dataclass(frozen=True, repr=False)
class FixedPoint(ScalarFormat):
    """Signed (two's complement) or unsigned fixed point: `bits` bits, fractional length `fl`."""

    bits: int
    fl: int
    signed: bool = True

    def __post_init__(self) -> None:
        limit = MAX_SIGNED_BITS if self.signed else MAX_UNSIGNED_BITS
        name = "fixed" if self.signed else "ufixed"
        object.__setattr__(self, "bits", check_int(self.bits, f"{name} bits", 1, limit))
        object.__setattr__(self, "fl", check_int(self.fl, f"{name} fl", -FL_LIMIT, FL_LIMIT))
        object.__setattr__(self, "signed", bool(self.signed))

    # -- integer attributes for kernels and the simulator ----------------------------------

    @property
    def min_code(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def code_range(self) -> tuple[int, int]:
        return self.min_code, self.max_code

    @property
    def code_dtype(self) -> np.dtype:
        """The narrowest signed integer type that holds every code (int8 for 8-bit signed)."""
        return int_dtype_for(self.min_code, self.max_code)

    @property
    def step(self) -> float:
        """The grid spacing 2^-fl."""
        return math.ldexp(1.0, -self.fl)

    @property
    def integer_bits(self) -> int:
        """bits - fl: integer bits including the sign bit (Ristretto's il)."""
        return self.bits - self.fl

    # -- values ------------------------------------------------------------------------------

    @property
    def max(self) -> float:
        return math.ldexp(float(self.max_code), -self.fl)

    @property
    def min(self) -> float:
        return math.ldexp(float(self.min_code), -self.fl)

    @property
    def smallest_positive(self) -> float:
        return self.step

    def layout(self) -> tuple[Field, ...]:
        """Sign (two's complement), integer and fraction bits; a binary point outside the code
        (fl < 0 or fl >= bits) leaves only integer or only fraction bits."""
        body = self.bits - int(self.signed)
        fraction = min(max(self.fl, 0), body)
        fields = [Field("sign", 1)] if self.signed else []
        fields += [Field("integer", body - fraction), Field("fraction", fraction)]
        return tuple(f for f in fields if f.width)

    def describe(self) -> str:
        kind = "signed two's-complement" if self.signed else "unsigned"
        return (f"{kind} fixed point, {self.bits} bits, fractional length {self.fl} "
                f"(value = code * 2^{-self.fl})")

    def __str__(self) -> str:
        return alias_of(self) or f"{'fixed' if self.signed else 'ufixed'}<{self.bits},{self.fl}>"

    # -- quantization --------------------------------------------------------------------------

    def nb_params(self, overflow: str | Overflow | None = None) -> tuple:
        """Plain scalars for `formats.fixed_nb.fixed_code` (see its docstring), in its order:
        (scale, wrap_period, lo, hi, modulus, min_code, max_code, overflow_code)."""
        over = Overflow.SATURATE if overflow is None else self._modes("nearest_even", overflow)[1]
        half = math.ldexp(1.0, self.bits - 1)
        modulus = math.ldexp(1.0, self.bits)
        lo, hi = (-half, half) if self.signed else (0.0, modulus)
        min_code = self.min_code
        if over is Overflow.SATURATE_SYMMETRIC and self.signed:
            min_code = -self.max_code
        return (math.ldexp(1.0, self.fl), math.ldexp(1.0, self.bits - self.fl), lo, hi, modulus,
                np.int64(min_code), np.int64(self.max_code), over.code)

    def _check_wrap_input(self, flat, overflow) -> None:
        """Wrap-around needs a finite input: infinity has no residue modulo 2^bits."""
        if overflow is Overflow.WRAP and np.isinf(flat).any():
            raise RsimError(f"{self}: overflow=wrap cannot wrap an infinite input; "
                            "use overflow=saturate or remove the infinities")

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        self._check_wrap_input(flat, overflow)
        return fixed_values_array(flat, self.nb_params(overflow), rounding.code, u, self.step, out)

    def _encode(self, flat, shape, rounding: Rounding, overflow, u):
        self._check_wrap_input(flat, overflow)
        codes = np.empty(flat.size, dtype=np.int64)
        nans = fixed_codes_array(flat, self.nb_params(overflow), rounding.code, u, codes)
        return codes, nans

    def _decode(self, codes, shape):
        return codes.astype(np.float64) * self.step

    def encode_clipped(self, x, rounding: str | Rounding = "nearest_even",
                       rng: np.random.Generator | int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Saturating `encode`, with the mask of the inputs that lay outside [min, max], in
        one pass (float32 input is read as it is); the codes come in `code_dtype`."""
        flat, shape, _ = as_flat(x, None)
        mode, _ = self._modes(rounding, "saturate")
        codes = np.empty(flat.size, dtype=self.code_dtype)
        clipped = np.empty(flat.size, dtype=np.bool_)
        nans = fixed_codes_clipped_array(flat, self.nb_params("saturate"), mode.code,
                                         uniforms(rng, mode, flat.size), codes, clipped)
        self._check_nans(nans)
        return codes.reshape(shape), clipped.reshape(shape)


def _build(signed: bool):
    def build(args: Args) -> FixedPoint:
        bits, fl = args.expect_positional(("W", "F"))
        args.done(())
        return FixedPoint(args.integer(bits, "W (total bits)"),
                          args.integer(fl, "F (fractional length)"), signed)
    return build


register("fixed", _build(True))
register("ufixed", _build(False))
for _bits in (4, 8, 16, 32):
    register_alias(f"int{_bits}", FixedPoint(_bits, 0))
register_alias("uint8", FixedPoint(8, 0, signed=False))
