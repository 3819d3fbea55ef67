"""Requantization of accumulator values to an output integer format, three ways.

- `requantize_shift`: out = overflow(round(acc / 2^shift)), any `formats.modes.Rounding`
  (stochastic = floor(acc/2^shift + u) with u = rng.random(), the same draw `formats` uses);
  `requantize_to_range` is its saturating output stage fused with the mask of saturated outputs.
- `requantize_multiplier`: integer multiplier + shift (TFLite/gemmlowp). method="tflite" is
  TFLite's MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul (round half away
  from zero) then RoundingDivideByPOT (round half away from zero), i.e. two roundings on int32;
  method="exact" rounds acc·multiplier / 2^(31 − shift) once, exactly, with any Rounding.
- `requantize_scale`: what onnxruntime (MLAS) does for QLinearConv/QLinearMatMul:
  float32(acc)·float32(scale), clamped to the output range minus the zero point, rounded half to
  even in float32, plus the zero point. `onnx_output_scale` forms the float32 scale as
  onnxruntime does: x_scale·w_scale/y_scale in float32.

Every function then applies the output format's overflow rule: saturate, wrap or
saturate_symmetric over `out_bits` signed (two's complement) or unsigned codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from formats.base import check_int, int_dtype_for
from formats.errors import RsimError
from formats.modes import Overflow, Rounding, as_overflow, as_rounding
from formats.rounding_nb import (
    FLOOR,
    NEAREST_AWAY,
    NEAREST_EVEN,
    NEAREST_UP,
    STOCHASTIC,
    TOWARD_ZERO,
)

MAX_SHIFT = 62
_U_BITS = 53  # numpy's Generator.random() returns multiples of 2^-53


@njit(cache=True)
def round_shift(x, s, rounding, u):
    """x / 2^s rounded to an integer (int64 x, 0 <= s <= 62), exactly, in mode `rounding`.

    Stochastic: floor(x / 2^s + u) for the draw u in [0, 1), a multiple of 2^-53; the carry
    test u·2^s >= 2^s − r is done on integers scaled by 2^max(s, 53).
    """
    if s == 0:
        return x
    q = x >> s
    r = x & ((np.int64(1) << s) - 1)
    half = np.int64(1) << (s - 1)
    if rounding == FLOOR:
        return q
    if rounding == TOWARD_ZERO:
        return q + (1 if (r != 0 and x < 0) else 0)
    if rounding == NEAREST_UP:
        return q + (1 if r >= half else 0)
    if rounding == NEAREST_AWAY:
        return q + (1 if (r > half or (r == half and x >= 0)) else 0)
    if rounding == NEAREST_EVEN:
        return q + (1 if (r > half or (r == half and (q & 1) == 1)) else 0)
    if rounding == STOCHASTIC:
        d = max(s, _U_BITS)
        u_int = np.int64(u * 9007199254740992.0)  # u · 2^53, exact
        carry = (u_int << (d - _U_BITS)) + (r << (d - s)) >= (np.int64(1) << d)
        return q + (1 if carry else 0)
    return q


@njit(cache=True, inline="always")
def apply_overflow(v, lo, hi, bits, wrap, signed):
    """v brought into [lo, hi]: clamped, or wrapped modulo 2^bits."""
    if wrap:
        if signed:
            sh = 64 - bits
            return (v << sh) >> sh
        return v & ((np.int64(1) << bits) - 1)
    return min(max(v, lo), hi)


@njit(cache=True, nogil=True)
def _shift_requant(acc, shift, rounding, u, lo, hi, bits, wrap, signed, out):
    stochastic = rounding == STOCHASTIC
    for i in range(acc.size):
        x = np.int64(acc[i])
        s = shift[i]
        if s >= 0:
            v = round_shift(x, s, rounding, u[i] if stochastic else 0.0)
        else:
            v = x << -s
        out[i] = apply_overflow(v, lo, hi, bits, wrap, signed)


@njit(cache=True, nogil=True)
def _shift_saturate(acc, s, rounding, u, lo, hi, out, saturated):
    """One pass of `requantize_to_range`. For s > 0 and a deterministic mode the rounding is
    branch-free (it vectorizes): q = floor(x / 2^s) is incremented when the remainder r exceeds
    a threshold t and a gate g1 is set, or equals t and a gate g2 is set:
    floor: never; toward_zero: r > 0 for x < 0; nearest_up: r >= half; nearest_away: r > half,
    or r = half for x >= 0; nearest_even: r > half, or r = half for odd q."""
    if s <= 0 or rounding == STOCHASTIC:
        stochastic = rounding == STOCHASTIC
        for i in range(acc.size):
            x = np.int64(acc[i])
            v = round_shift(x, s, rounding, u[i] if stochastic else 0.0) if s >= 0 else x << -s
            c = min(max(v, lo), hi)
            out[i] = c
            saturated[i] = c != v
        return
    mask = (np.int64(1) << s) - 1
    nearest = rounding in (NEAREST_UP, NEAREST_AWAY, NEAREST_EVEN)
    t = (np.int64(1) << (s - 1)) if nearest else np.int64(0)
    g1_always = np.int64(nearest)
    g1_negative = np.int64(rounding == TOWARD_ZERO)
    g2_always = np.int64(rounding == NEAREST_UP)
    g2_positive = np.int64(rounding == NEAREST_AWAY)
    g2_odd = np.int64(rounding == NEAREST_EVEN)
    for i in range(acc.size):
        x = np.int64(acc[i])
        q = x >> s
        r = x & mask
        negative = np.int64(x < 0)
        g1 = g1_always | (g1_negative & negative)
        g2 = g2_always | (g2_positive & (1 - negative)) | (g2_odd & q)
        v = q + ((np.int64(r > t) & g1) | (np.int64(r == t) & g2))
        c = min(max(v, lo), hi)
        out[i] = c
        saturated[i] = c != v


@njit(cache=True, nogil=True)
def _exact_multiplier_requant(acc, multiplier, shift, rounding, u, zero_point, lo, hi, bits, wrap,
                              signed, out):  # fmt: skip
    stochastic = rounding == STOCHASTIC
    for i in range(acc.size):
        x = np.int64(acc[i]) * multiplier[i]
        s = 31 - shift[i]
        if s >= 0:
            v = round_shift(x, s, rounding, u[i] if stochastic else 0.0)
        else:
            v = x << -s
        out[i] = apply_overflow(v + zero_point[i], lo, hi, bits, wrap, signed)


@njit(cache=True)
def _srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul of two int32 values (as int64)."""
    if a == b and a == -2147483648:
        return np.int64(2147483647)
    ab = a * b
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    total = ab + nudge
    q = total // 2147483648
    if total < 0 and q * 2147483648 != total:  # C division truncates toward zero
        q += 1
    return q


@njit(cache=True)
def _rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, ties away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True, nogil=True)
def _tflite_requant(acc, multiplier, shift, zero_point, lo, hi, bits, wrap, signed, out):
    for i in range(acc.size):
        left = max(shift[i], 0)
        right = max(-shift[i], 0)
        high = _srdhm(np.int64(acc[i]) << left, multiplier[i])
        v = _rounding_divide_by_pot(high, right) + zero_point[i]
        out[i] = apply_overflow(v, lo, hi, bits, wrap, signed)


def _output_range(out_bits: int, signed: bool, overflow: Overflow) -> tuple[int, int]:
    limit = 64 if signed else 63
    check_int(out_bits, "out_bits", 1, limit)
    if not signed:
        return 0, (1 << out_bits) - 1
    hi = (1 << (out_bits - 1)) - 1
    return (-hi if overflow is Overflow.SATURATE_SYMMETRIC else -hi - 1), hi


def _flat_int(x: object, what: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise RsimError(f"{what}: must be integers, got dtype {arr.dtype}")
    try:
        return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=np.int64).ravel()
    except ValueError:
        raise RsimError(f"{what}: shape {arr.shape} does not broadcast to the accumulator shape {shape}") from None


def _uniforms(rng: object, rounding: Rounding, n: int) -> np.ndarray:
    if rounding is not Rounding.STOCHASTIC:
        return np.zeros(1)
    if not isinstance(rng, np.random.Generator):
        raise RsimError("rng: rounding=stochastic needs a numpy.random.Generator (seed it for a reproducible run)")
    return rng.random(n)


def _accumulator(acc: object) -> np.ndarray:
    arr = np.asarray(acc)
    if arr.dtype.kind not in "iu" or (arr.dtype.kind == "u" and arr.dtype.itemsize == 8):
        raise RsimError(f"acc: must be signed integers (int8..int64), got dtype {arr.dtype}")
    return arr


def requantize_shift(
    acc: np.ndarray,
    shift: int | np.ndarray,
    *,
    out_bits: int,
    signed: bool = True,
    rounding: str | Rounding = "nearest_even",
    overflow: str | Overflow = "saturate",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """int64 codes round(acc / 2^shift) brought into `out_bits` by the overflow rule.

    `shift` is an int or an integer array broadcastable to acc (e.g. per channel: shape (C, 1, 1)
    for NCHW), each in −62..62; a negative shift multiplies by 2^−shift exactly.
    """
    arr = _accumulator(acc)
    mode, over = as_rounding(rounding), as_overflow(overflow)
    lo, hi = _output_range(out_bits, signed, over)
    shifts = _flat_int(shift, "shift", arr.shape)
    if shifts.size and (shifts.min() < -MAX_SHIFT or shifts.max() > MAX_SHIFT):
        raise RsimError(f"shift: must lie in -{MAX_SHIFT}..{MAX_SHIFT}, got {shifts.min()}..{shifts.max()}")
    flat = np.ascontiguousarray(arr).ravel()
    if shifts.size and shifts.min() < 0:
        left = np.maximum(-shifts, 0)
        if np.any(np.abs(flat.astype(np.float64)) * np.exp2(left) >= 2.0**62):
            raise RsimError("shift: a negative (left) shift takes an accumulator value beyond 62 bits")
    out = np.empty(flat.size, np.int64)
    _shift_requant(flat, shifts, mode.code, _uniforms(rng, mode, flat.size), lo, hi,
                   int(out_bits), over is Overflow.WRAP, bool(signed), out)  # fmt: skip
    return out.reshape(arr.shape)


def requantize_to_range(
    acc: np.ndarray,
    shift: int,
    lo: int,
    hi: int,
    *,
    rounding: str | Rounding = "nearest_even",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """round(acc / 2^shift) saturated into [lo, hi] (acc's shape, in the narrowest signed integer
    type holding [lo, hi]) and the mask of the outputs that saturated: a requantizing output
    stage in one pass.

    Equals `np.clip(requantize_shift(acc, shift, out_bits=64, ...), lo, hi)` with the same
    stochastic draws; `shift` is one int in −62..62.
    """
    arr = _accumulator(acc)
    mode = as_rounding(rounding)
    shift = check_int(shift, "shift", -MAX_SHIFT, MAX_SHIFT)
    if not -(1 << 63) <= lo <= hi < (1 << 63):
        raise RsimError(f"lo, hi: need -2^63 <= lo <= hi < 2^63, got {lo}, {hi}")
    flat = np.ascontiguousarray(arr).ravel()
    if shift < 0 and np.any(np.abs(flat.astype(np.float64)) * 2.0**-shift >= 2.0**62):
        raise RsimError("shift: a negative (left) shift takes an accumulator value beyond 62 bits")
    out = np.empty(flat.size, int_dtype_for(lo, hi))
    saturated = np.empty(flat.size, np.bool_)
    _shift_saturate(flat, shift, mode.code, _uniforms(rng, mode, flat.size), lo, hi, out,
                    saturated)  # fmt: skip
    return out.reshape(arr.shape), saturated.reshape(arr.shape)


def quantize_multiplier(real_multiplier: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite QuantizeMultiplier: real ≈ multiplier · 2^(shift − 31), multiplier in [2^30, 2^31).

    multiplier = round(frac · 2^31) (ties away from zero) for real = frac · 2^shift with
    frac in [0.5, 1); a frac rounding up to 1 becomes 2^30 with shift + 1. Zero gives (0, 0).
    Returns int64 arrays of the input's shape.
    """
    real = np.asarray(real_multiplier, dtype=np.float64)
    if not np.all(np.isfinite(real)) or np.any(real < 0):
        raise RsimError("real_multiplier: must be finite and >= 0")
    frac, exp = np.frexp(real)
    q = np.floor(frac * 2.0**31 + 0.5).astype(np.int64)  # frac >= 0: ties away from zero
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    exp = np.where(carry, exp + 1, exp).astype(np.int64)
    tiny = exp < -31
    return np.where(tiny, 0, q), np.where(tiny | (real == 0), 0, exp)


def requantize_multiplier(
    acc: np.ndarray,
    multiplier: int | np.ndarray,
    shift: int | np.ndarray,
    *,
    out_bits: int,
    signed: bool = True,
    zero_point: int | np.ndarray = 0,
    method: str = "tflite",
    rounding: str | Rounding = "nearest_even",
    overflow: str | Overflow = "saturate",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """int64 codes of acc · multiplier · 2^(shift − 31) + zero_point in the output format.

    multiplier (int32, usually from `quantize_multiplier`), shift and zero_point are ints or
    arrays broadcastable to acc. method="tflite": TFLite's two roundings on int32 (acc·2^max(shift,0)
    must fit int32; `rounding` is ignored); method="exact": one rounding of the exact product in
    mode `rounding`.
    """
    arr = _accumulator(acc)
    over = as_overflow(overflow)
    lo, hi = _output_range(out_bits, signed, over)
    flat = np.ascontiguousarray(arr, dtype=np.int64).ravel()
    mult = _flat_int(multiplier, "multiplier", arr.shape)
    shifts = _flat_int(shift, "shift", arr.shape)
    zps = _flat_int(zero_point, "zero_point", arr.shape)
    out = np.empty(flat.size, np.int64)
    if flat.size == 0:
        return out.reshape(arr.shape)
    if mult.min() < 0 or mult.max() > 2**31 - 1:
        raise RsimError("multiplier: must lie in 0..2^31-1 (a Q0.31 int32)")
    if method == "tflite":
        if shifts.min() < -31 or shifts.max() > 30:
            raise RsimError(f"shift: must lie in -31..30 for method='tflite', got {shifts.min()}..{shifts.max()}")
        scaled = flat * np.left_shift(1, np.maximum(shifts, 0))
        if flat.min() < -(2**31) or flat.max() > 2**31 - 1 or scaled.min() < -(2**31) or scaled.max() > 2**31 - 1:
            raise RsimError("acc: method='tflite' needs acc·2^max(shift, 0) to fit int32")
        _tflite_requant(flat, mult, shifts, zps, lo, hi, int(out_bits), over is Overflow.WRAP, bool(signed), out)
    elif method == "exact":
        mode = as_rounding(rounding)
        if np.any(np.abs(flat.astype(np.float64)) >= 2.0**31):
            raise RsimError("acc: method='exact' needs |acc| < 2^31 (the product must fit 62 bits)")
        if shifts.min() < 31 - MAX_SHIFT or shifts.max() > 31:
            raise RsimError(f"shift: must lie in {31 - MAX_SHIFT}..31 for method='exact'")
        _exact_multiplier_requant(flat, mult, shifts, mode.code, _uniforms(rng, mode, flat.size), zps,
                                  lo, hi, int(out_bits), over is Overflow.WRAP, bool(signed), out)  # fmt: skip
    else:
        raise RsimError(f"method: must be 'tflite' or 'exact', got {method!r}")
    return out.reshape(arr.shape)


def onnx_output_scale(x_scale: float | np.ndarray, w_scale: float | np.ndarray,
                      y_scale: float | np.ndarray) -> np.ndarray:  # fmt: skip
    """The float32 requantization scale onnxruntime uses: (x_scale · w_scale) / y_scale in float32."""
    xs, ws, ys = (np.asarray(v, dtype=np.float32) for v in (x_scale, w_scale, y_scale))
    return (xs * ws) / ys


def requantize_scale(
    acc: np.ndarray,
    scale: float | np.ndarray,
    *,
    zero_point: int | np.ndarray = 0,
    out_bits: int = 8,
    signed: bool = True,
) -> np.ndarray:
    """onnxruntime's QLinear* output step: clamp(float32(acc)·scale) rounded half to even, + zp.

    scale (float32, e.g. from `onnx_output_scale`) and zero_point broadcast to acc. The clamp
    bounds are the output range minus the zero point, in float32, as MLAS does.
    """
    arr = _accumulator(acc)
    lo, hi = _output_range(out_bits, signed, Overflow.SATURATE)
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu" or zp.size and (zp.min() < lo or zp.max() > hi):
        raise RsimError(f"zero_point: must be integers in the output range {lo}..{hi}")
    zp = zp.astype(np.int64)
    scale32 = np.asarray(scale, dtype=np.float32)
    values = arr.astype(np.float32) * scale32
    values = np.minimum(np.maximum(values, (lo - zp).astype(np.float32)), (hi - zp).astype(np.float32))
    return np.rint(values).astype(np.int64) + zp
