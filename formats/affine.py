"""Integer affine (asymmetric) quantization: value = (q - zero_point) * scale, q an integer code.

This is what ONNX QuantizeLinear/DequantizeLinear, QLinear* operators and TFLite int8 models
carry: q = saturate(round(x / scale) + zero_point). Per-tensor formats have one scale and zero
point; per-channel formats (`axis=A`) have one per index along axis A of the tensor. The rounding
decision is exact (the quotient x / scale is compared with exact products, not rounded first);
only stochastic rounding uses the quotient's float64 fraction. Values (q - zp) * scale are
rounded once to float64 (a real scale such as 0.1 is not a binary fraction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from formats.base import Field, Format, ScalarFormat, check_int
from formats.errors import RsimError
from formats.fixed import FixedPoint
from formats.modes import Overflow, Rounding
from formats.rounding_nb import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, STOCHASTIC,
                                 TOWARD_ZERO, by_rounding, two_sum)
from formats.spec import Args, register

MAX_BITS = 32
SCALE_RANGE = (2.0 ** -149, 2.0 ** 127)  # positive float32 numbers, as ONNX scales are


@njit(cache=True, inline="always")
def _two_product(a: float, b: float) -> tuple[float, float]:
    """(p, e) with p = fl(a * b) and p + e = a * b exactly (Dekker, Veltkamp splitting)."""
    p = a * b
    c = 134217729.0 * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = 134217729.0 * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


@njit(cache=True, inline="always")
def _compare(x: float, t: float, s: float) -> int:
    """sign(x - t * s) exactly: if x - p is inexact it is far larger than the error term e."""
    p, e = _two_product(t, s)
    d = x - p
    if d > e:
        return 1
    if d < e:
        return -1
    return 0


@njit(cache=True, inline="always")
def affine_code(x: float, scale: float, zero_point: int, min_code: int, max_code: int,
                rounding: int, u: float) -> int:
    """saturate(round(x / scale) + zero_point) with the rounding decided exactly."""
    y = x / scale
    if y != y:
        return min_code
    if y >= 2.0 ** 40 or y <= -(2.0 ** 40):  # far outside every code range (<= 32 bits)
        return max_code if y > 0 else min_code
    n = np.floor(y)  # y is within an ulp of the quotient: n may be off by one, fixed here
    if _compare(x, n, scale) < 0:
        n -= 1.0
    elif _compare(x, n + 1.0, scale) >= 0:
        n += 1.0
    if rounding == FLOOR:
        r = n
    elif rounding == TOWARD_ZERO:
        r = n if x >= 0.0 or _compare(x, n, scale) == 0 else n + 1.0
    elif rounding == STOCHASTIC:
        p, e = _two_product(n, scale)
        d, d_err = two_sum(x, -p)
        fraction = (d + (d_err - e)) / scale  # the quotient's fraction, rounded once
        r = n + 1.0 if fraction + u >= 1.0 else n
    else:
        half = _compare(x, n + 0.5, scale)
        if half < 0:
            r = n
        elif half > 0:
            r = n + 1.0
        elif rounding == NEAREST_EVEN:
            r = n if n % 2.0 == 0.0 else n + 1.0
        elif rounding == NEAREST_AWAY:
            r = n + 1.0 if x > 0.0 else n
        else:  # NEAREST_UP
            r = n + 1.0
    q = np.int64(r) + zero_point
    return max(min(q, max_code), min_code)


@njit(cache=True, inline="always")
def _codes_loop(rounding, x, u, codes, params):
    scales, zero_points, inner, min_code, max_code = params
    channels = scales.size
    nan_count = 0
    for i in range(x.size):
        xi = np.float64(x[i])
        nan_count += np.int64(xi != xi)
        c = (i // inner) % channels
        ui = u[i] if rounding == STOCHASTIC else 0.0
        codes[i] = affine_code(xi, scales[c], zero_points[c], min_code, max_code, rounding, ui)
    return nan_count


@njit(cache=True, nogil=True)
def affine_codes_array(x, params, rounding, u, codes):
    """codes[i] = affine_code(x[i], ...) with the channel of element i; returns the NaN count.

    params = (scales, zero_points, inner, min_code, max_code): element i belongs to channel
    (i // inner) % scales.size of a C-ordered flat tensor.
    """
    return by_rounding(_codes_loop, rounding, x, u, codes, params)


def _number_tuple(value, what: str, kind: type) -> tuple:
    values = value if isinstance(value, (tuple, list, np.ndarray)) else (value,)
    values = tuple(np.asarray(values).ravel().tolist())
    if not values:
        raise RsimError(f"affine {what}: needs at least one value")
    return tuple(kind(v) for v in values) if kind is float else values


@dataclass(frozen=True, repr=False)
class Affine(ScalarFormat):
    """Integer codes of `base` (an integer fixed-point format such as int8) with a scale and a
    zero point, per tensor (axis=None) or per channel along `axis`."""

    base: FixedPoint
    scale: tuple[float, ...] | float
    zero_point: tuple[int, ...] | int = 0
    axis: int | None = None

    def __post_init__(self) -> None:
        base = self.base
        if not isinstance(base, FixedPoint) or base.fl != 0 or base.bits > MAX_BITS:
            raise RsimError(f"affine base must be an integer format (int4, int8, uint8, int16, "
                            f"int32, fixed<W,0> with W <= {MAX_BITS}), got {base}")
        scales = _number_tuple(self.scale, "scale", float)
        for s in scales:
            if not (SCALE_RANGE[0] <= s <= SCALE_RANGE[1]):
                raise RsimError(f"affine scale must be a finite number > 0 (within float32's "
                                f"positive range), got {s!r}")
        zps = _number_tuple(self.zero_point, "zero point", int)
        for z in zps:
            check_int(z, f"affine zero point of {base}", base.min_code, base.max_code)
        zps = tuple(int(z) for z in zps)
        if self.axis is None:
            if len(scales) != 1 or len(zps) != 1:
                raise RsimError("affine: several scales or zero points need axis=A "
                                "(the per-channel axis)")
        else:
            object.__setattr__(self, "axis", check_int(self.axis, "affine axis", 0))
            if len(zps) not in (1, len(scales)) and len(scales) != 1:
                raise RsimError(f"affine: {len(scales)} scales but {len(zps)} zero points")
        object.__setattr__(self, "scale", scales)
        object.__setattr__(self, "zero_point", zps)

    @property
    def channels(self) -> int:
        return max(len(self.scale), len(self.zero_point))

    @property
    def bits(self) -> int:
        return self.base.bits

    def channel(self, index: int) -> Affine:
        """The per-tensor format of one channel."""
        check_int(index, f"{self} channel", 0, self.channels - 1)
        return Affine(self.base, self.scale[index % len(self.scale)],
                      self.zero_point[index % len(self.zero_point)])

    @property
    def code_range(self) -> tuple[int, int]:
        return self.base.min_code, self.base.max_code

    def _values_of(self, code: int) -> np.ndarray:
        return (code - np.array(self.zero_point)) * np.array(self.scale)

    @property
    def max(self) -> float:
        return float(np.max(self._values_of(self.base.max_code)))

    @property
    def min(self) -> float:
        return float(np.min(self._values_of(self.base.min_code)))

    @property
    def smallest_positive(self) -> float:
        """The smallest scale (a step of one code)."""
        return min(self.scale)

    def layout(self) -> tuple[Field, ...]:
        return self.base.layout()

    def describe(self) -> str:
        where = "per tensor" if self.axis is None else f"per channel along axis {self.axis}"
        return (f"integer affine {self.base}: value = (q - zero_point) * scale, {where} "
                f"({self.channels} scale(s))")

    def __str__(self) -> str:
        def numbers(values: tuple) -> str:
            if self.axis is None:
                return repr(values[0])
            return "[" + ",".join(repr(v) for v in values) + "]"

        parts = [str(self.base), f"scale={numbers(self.scale)}"]
        if any(self.zero_point):
            parts.append(f"zp={numbers(self.zero_point)}")
        if self.axis is not None:
            parts.append(f"axis={self.axis}")
        return f"affine<{','.join(parts)}>"

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        if overflow is Overflow.WRAP:
            raise RsimError(f"{self}: affine formats saturate (as ONNX QuantizeLinear); overflow "
                            "must be None, saturate or saturate_symmetric")

    def _params(self, shape: tuple[int, ...], overflow: Overflow | None) -> tuple:
        """Per-element channel layout and code bounds for the kernel."""
        channels = self.channels
        scales = np.broadcast_to(np.array(self.scale), (channels,)).astype(np.float64)
        zps = np.broadcast_to(np.array(self.zero_point, dtype=np.int64), (channels,)).copy()
        if self.axis is None:
            inner = 1
        else:
            if self.axis >= len(shape) or (channels > 1 and shape[self.axis] != channels):
                raise RsimError(f"{self}: tensor of shape {shape} has no axis {self.axis} with "
                                f"{channels} channels")
            inner = int(np.prod(shape[self.axis + 1:], dtype=np.int64))
            if channels == 1:
                scales = np.repeat(scales, shape[self.axis])
                zps = np.repeat(zps, shape[self.axis])
        min_code = self.base.min_code
        if overflow is Overflow.SATURATE_SYMMETRIC and self.base.signed:
            min_code = -self.base.max_code
        return scales.copy(), zps, np.int64(inner), np.int64(min_code), \
            np.int64(self.base.max_code)

    def _encode(self, flat, shape, rounding: Rounding, overflow, u):
        codes = np.empty(flat.size, dtype=np.int64)
        nans = affine_codes_array(flat, self._params(shape, overflow), rounding.code, u, codes)
        return codes, nans

    def _decode(self, codes, shape):
        scales, zps, inner, _, _ = self._params(shape, None)
        channel = (np.arange(codes.size) // inner) % scales.size
        return (codes - zps[channel]) * scales[channel]

    def _quantize(self, flat, shape, rounding: Rounding, overflow, u, out) -> int:
        codes, nans = self._encode(flat, shape, rounding, overflow, u)
        out[:] = self._decode(codes, shape)
        return nans


def _build(args: Args) -> Affine:
    (base,) = args.expect_positional(("INT",))
    if not isinstance(base, Format):
        raise RsimError(f"format spec {args.spec!r}: the first argument must be an integer "
                        "format such as int8 or uint8")
    scale = args.take("scale", None, (int, float, tuple), "a number > 0 or [s0,s1,...]")
    if scale is None:
        raise RsimError(f"format spec {args.spec!r}: affine needs scale=S (or scale=[...] "
                        "with axis=A)")
    zp = args.take("zp", 0, (int, tuple), "an integer or [z0,z1,...]")
    axis = args.take("axis", None, (int,), "an integer >= 0")
    args.done(("scale", "zp", "axis"))
    return Affine(base, scale, zp, axis)


register("affine", _build)
