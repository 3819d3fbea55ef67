"""OCP Microscaling (MX v1.0) block formats: blocks of `block` elements share one e8m0 scale.

Per block (consecutive elements along `axis`): X = 2^(floor(log2(max|V|)) - emax_elem), where
emax_elem is the exponent of the element format's largest binade; each element is V / X rounded
to the element format with saturation. The scale exponent is clamped below at -127 (a zero block
gets 2^-127); a block holding inf or NaN, or needing an exponent above 127, gets the NaN scale
(code 0xFF) and decodes to NaN everywhere, as the OCP reference code does. Instead of dividing,
the element format's grid is scaled by X, so the rounding is exact even where V / X would
underflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from formats.base import Field, Format, as_flat, uniforms, check_int
from formats.errors import RsimError
from formats.fixed import FixedPoint
from formats.fixed_nb import fixed_code
from formats.float_nb import OVERFLOW_SATURATE, round_float
from formats.minifloat import Minifloat
from formats.modes import Overflow, Rounding
from formats.rounding_nb import STOCHASTIC, by_rounding, pow2
from formats.spec import Args, alias_of, register, register_alias

SCALE_BIAS = 127
SCALE_NAN_CODE = 0xFF


class MXCodes(NamedTuple):
    """Encoded MX tensor: element codes (shape of x) and e8m0 scale codes (one per block, the
    block axis shortened to the number of blocks)."""

    elements: np.ndarray
    scales: np.ndarray


@njit(cache=True, inline="always")
def _float_loop(rounding, blocks, u, out, params):
    exps, man_bits, min_exp, max_exp, max_value, subnormals, signed_zero = params
    n_blocks, size = blocks.shape
    for b in range(n_blocks):
        s = exps[b]
        for j in range(size):
            ui = u[b * size + j] if rounding == STOCHASTIC else 0.0
            out[b, j] = round_float(blocks[b, j], man_bits, min_exp + s, max_exp + s,
                                    max_value * pow2(s), subnormals, OVERFLOW_SATURATE,
                                    signed_zero, rounding, ui) * pow2(-s)
    return 0


@njit(cache=True, nogil=True)
def mx_float_elements(blocks, params, rounding, u, out):
    """out[b, j] = the minifloat element of blocks[b, j] under the block's scale 2^exps[b]."""
    return by_rounding(_float_loop, rounding, blocks, u, out, params)


@njit(cache=True, inline="always")
def _int_loop(rounding, blocks, u, out, params):
    exps, fl, lo, hi, modulus, min_code, max_code, overflow = params
    n_blocks, size = blocks.shape
    for b in range(n_blocks):
        s = exps[b]
        for j in range(size):
            ui = u[b * size + j] if rounding == STOCHASTIC else 0.0
            code = fixed_code(blocks[b, j], pow2(fl - s), 1.0, lo, hi, modulus, min_code,
                              max_code, overflow, rounding, ui)
            out[b, j] = code * pow2(-fl)
    return 0


@njit(cache=True, nogil=True)
def mx_int_elements(blocks, params, rounding, u, out):
    """out[b, j] = the fixed-point element of blocks[b, j] under the block's scale 2^exps[b]."""
    return by_rounding(_int_loop, rounding, blocks, u, out, params)


@dataclass(frozen=True, repr=False)
class MXFormat(Format):
    """An OCP MX block format: `element` values times a shared power-of-two scale per block."""

    element: Minifloat | FixedPoint
    block: int = 32
    axis: int = -1

    def __post_init__(self) -> None:
        element = self.element
        if not (isinstance(element, Minifloat) or (isinstance(element, FixedPoint)
                                                   and element.signed and element.bits <= 32)):
            raise RsimError(f"mx element must be a minifloat (e.g. fp8_e4m3fn) or a signed "
                            f"fixed<W,F> with W <= 32, got {element}")
        object.__setattr__(self, "block", check_int(self.block, "mx block", 1, 1 << 16))
        object.__setattr__(self, "axis", check_int(self.axis, "mx axis"))

    @property
    def emax_elem(self) -> int:
        """Exponent of the element format's largest binade (floor(log2(element.max)))."""
        return math.frexp(self.element.max)[1] - 1

    @property
    def bits(self) -> int:
        """Bits per element (each block also stores one 8-bit scale)."""
        return self.element.bits

    @property
    def max(self) -> float:
        return math.ldexp(self.element.max, SCALE_BIAS)

    @property
    def min(self) -> float:
        return -self.max

    @property
    def smallest_positive(self) -> float:
        return math.ldexp(self.element.smallest_positive, -SCALE_BIAS)

    @property
    def has_nan(self) -> bool:
        return True  # the NaN scale

    def layout(self) -> tuple[Field, ...]:
        return (Field("shared scale (e8m0, per block)", 8),) + self.element.layout()

    def describe(self) -> str:
        return (f"OCP MX block format: blocks of {self.block} {self.element} elements along axis "
                f"{self.axis}, one e8m0 scale 2^(-127..127) per block; "
                f"{self.bits + 8 / self.block:g} bits per element")

    def __str__(self) -> str:
        alias = alias_of(self)
        if alias:
            return alias
        options = [str(self.element)]
        if self.block != 32:
            options.append(f"block={self.block}")
        if self.axis != -1:
            options.append(f"axis={self.axis}")
        return f"mx<{','.join(options)}>"

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        if overflow not in (None, Overflow.SATURATE):
            raise RsimError(f"{self}: MX elements always saturate; overflow must be None or "
                            f"saturate, got {overflow.value}")

    # -- blocking ------------------------------------------------------------------------------

    def _blocks(self, flat: np.ndarray, shape: tuple[int, ...]):
        """(blocks [n, block] float64, axis-last shape, padded length) of a tensor."""
        if not shape:
            shape = (1,)
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        if not 0 <= axis < len(shape):
            raise RsimError(f"{self}: tensor of shape {shape} has no axis {self.axis}")
        moved = np.moveaxis(flat.reshape(shape).astype(np.float64), axis, -1)
        length = moved.shape[-1]
        padded = -(-length // self.block) * self.block
        if padded != length:
            pad = [(0, 0)] * (moved.ndim - 1) + [(0, padded - length)]
            moved = np.pad(moved, pad)
        return np.ascontiguousarray(moved).reshape(-1, self.block), moved.shape, axis, length

    def _block_uniforms(self, u: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Stochastic draws (one per element of x, C order) laid out like the blocks."""
        return u if u.size == 1 else self._blocks(u, shape)[0].ravel()

    def _scale_exponents(self, blocks: np.ndarray) -> np.ndarray:
        """Shared exponents per block, with SCALE_BIAS + 1 standing for the NaN scale."""
        with np.errstate(invalid="ignore"):
            amax = np.max(np.abs(blocks), axis=1)
        exps = np.frexp(amax)[1].astype(np.int64) - 1 - self.emax_elem
        exps[amax == 0.0] = -SCALE_BIAS
        exps = np.maximum(exps, -SCALE_BIAS)
        exps[~np.isfinite(amax) | (exps > SCALE_BIAS)] = SCALE_BIAS + 1
        return exps

    def _elements(self, blocks, exps, rounding: Rounding, u) -> np.ndarray:
        """Element values (unscaled) per block; NaN-scale blocks are computed as scale 2^0."""
        safe = np.where(exps > SCALE_BIAS, 0, exps)
        data = np.where((exps > SCALE_BIAS)[:, None], 0.0, blocks)
        out = np.empty_like(data)
        element = self.element
        if isinstance(element, Minifloat):
            params = (safe, element.man_bits, element.min_exp, element.max_exp, element.max,
                      element.subnormals, element.special != "fnuz")
            mx_float_elements(data, params, rounding.code, u, out)
        else:
            params = (safe, element.fl) + element.nb_params(Overflow.SATURATE)[2:]
            mx_int_elements(data, params, rounding.code, u, out)
        return out

    def _unblock(self, blocks: np.ndarray, moved_shape, axis: int, length: int,
                 dtype) -> np.ndarray:
        moved = blocks.reshape(moved_shape)[..., :length]
        return np.moveaxis(moved, -1, axis).astype(dtype)

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        blocks, moved_shape, axis, length = self._blocks(flat, shape)
        exps = self._scale_exponents(blocks)
        scaled = self._elements(blocks, exps, rounding, self._block_uniforms(u, shape))
        scaled *= np.ldexp(1.0, np.minimum(exps, SCALE_BIAS).astype(np.int32))[:, None]
        scaled[exps > SCALE_BIAS] = np.nan
        out[:] = self._unblock(scaled, moved_shape, axis, length, out.dtype).ravel()
        return 0

    # -- codes ---------------------------------------------------------------------------------

    def encode(self, x, rounding="nearest_even", overflow=None, rng=None) -> MXCodes:
        """Element codes (shape of x) and e8m0 scale codes (one per block)."""
        flat, shape, _ = as_flat(x, None)
        mode, _ = self._modes(rounding, overflow)
        u = uniforms(rng, mode, flat.size)
        blocks, moved_shape, axis, length = self._blocks(flat, shape)
        exps = self._scale_exponents(blocks)
        elements = self._elements(blocks, exps, mode, self._block_uniforms(u, shape))
        codes = self.element.encode(elements).reshape(blocks.shape)
        codes[exps > SCALE_BIAS] = 0
        scale_codes = np.where(exps > SCALE_BIAS, SCALE_NAN_CODE, exps + SCALE_BIAS)
        scale_shape = moved_shape[:-1] + (moved_shape[-1] // self.block,)
        element_codes = self._unblock(codes, moved_shape, axis, length, np.int64)
        return MXCodes(element_codes.reshape(shape),
                       np.moveaxis(scale_codes.reshape(scale_shape), -1, axis))

    def decode(self, codes: MXCodes) -> np.ndarray:
        """float64 values of an `MXCodes` pair."""
        if not isinstance(codes, MXCodes):
            raise RsimError(f"decode {self}: expects MXCodes(elements, scales) from encode")
        elements = np.asarray(codes.elements)
        shape = elements.shape or (1,)
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        values = np.moveaxis(self.element.decode(elements).reshape(shape), axis, -1)
        scales = np.moveaxis(np.asarray(codes.scales, dtype=np.int64), axis, -1)
        length = values.shape[-1]
        if scales.shape[-1] != -(-length // self.block):
            raise RsimError(f"decode {self}: {scales.shape[-1]} scales for {length} elements "
                            f"in blocks of {self.block}")
        if scales.size and (scales.min() < 0 or scales.max() > SCALE_NAN_CODE):
            raise RsimError(f"decode {self}: scale codes must lie in [0, 255]")
        per_element = np.repeat(scales, self.block, axis=-1)[..., :length]
        factor = np.ldexp(1.0, (np.minimum(per_element, 254) - SCALE_BIAS).astype(np.int32))
        factor[per_element == SCALE_NAN_CODE] = np.nan
        return np.moveaxis(values * factor, -1, axis).reshape(elements.shape)


def _build(args: Args) -> MXFormat:
    (element,) = args.expect_positional(("ELEMENT",))
    if not isinstance(element, Format):
        raise RsimError(f"format spec {args.spec!r}: the first argument must be an element "
                        "format such as fp8_e4m3fn, fp4_e2m1fn or fixed<8,6>")
    block = args.take("block", 32, (int,), "an integer >= 1")
    axis = args.take("axis", -1, (int,), "an integer")
    args.done(("block", "axis"))
    return MXFormat(element, block, axis)


register("mx", _build)
for _name, _element in {
    "mxfp8_e4m3": Minifloat(4, 3, special="fn"),
    "mxfp8_e5m2": Minifloat(5, 2),
    "mxfp6_e3m2": Minifloat(3, 2, special="none"),
    "mxfp6_e2m3": Minifloat(2, 3, special="none"),
    "mxfp4": Minifloat(2, 1, special="none"),
    "mxint8": FixedPoint(8, 6),
}.items():
    register_alias(_name, MXFormat(_element))
