"""Resize (ONNX Resize and Upsample): nearest, linear and cubic interpolation, separable per
axis, with the ONNX coordinate transformation modes.

Attributes (normalised by the frontend): `mode` (nearest | linear | cubic),
`coordinate_mode` (half_pixel | half_pixel_symmetric | pytorch_half_pixel | align_corners |
asymmetric | tf_crop_and_resize), `nearest_mode` (round_prefer_floor | round_prefer_ceil |
floor | ceil), `cubic_coeff_a`, `exclude_outside` (bool), `extrapolation_value`, `antialias`
(bool: a downscaling linear/cubic filter stretched by 1/scale), and `axes`: one
(axis, scale, out_size, roi_start, roi_end) per resized axis (never the batch axis).

Each axis is a matrix of interpolation weights (out x in): an output position maps to a source
coordinate x, whose neighbours (edge-clamped) get the mode's coefficients, following the ONNX
definition (ratio in (0, 1], 1 on whole coordinates; exclude_outside renormalises over the
neighbours inside the input); tf_crop_and_resize writes `extrapolation_value` where x leaves
the input.

On codes, nearest moves codes (the output keeps the input's format; an extrapolation value is
rounded onto it). Linear sums exactly: each axis's weights are integers at WEIGHT_FL fractional
bits, rounded cumulatively so every row sums to exactly 2^WEIGHT_FL (a constant input stays
constant), and the whole sum is rounded once into the output format. Cubic is float-emulated.
"""

from __future__ import annotations

import math

import numpy as np

from rsim.ops.codes import constant_codes
from rsim.ops.registry import OpSpec, register
from rsim.quant.tensor import Outcome, QTensor

WEIGHT_FL = 16  # fractional bits of the linear interpolation weights on codes


def source_coordinates(out_size: int, in_size: int, scale: float, attrs,
                       roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Each output position's coordinate in the input, and (tf_crop_and_resize) whether it lies
    outside the input."""
    y = np.arange(out_size, dtype=np.float64)
    width = scale * in_size
    mode = attrs["coordinate_mode"]
    outside = None
    if mode == "align_corners":
        x = np.zeros(out_size) if width == 1 else y * (in_size - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        x = (np.full(out_size, (end - start) * (in_size - 1) / 2) if width == 1
             else y * (end - start) * (in_size - 1) / (width - 1))
        x = x + start * (in_size - 1)
        outside = (x < 0) | (x > in_size - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_size, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / width)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"coordinate transformation mode {mode!r} is not known")
    return x, outside


def _cubic(distances: list[float], a: float) -> list[float]:
    """The cubic convolution kernel with coefficient `a` at each distance."""
    out = []
    for t in distances:
        d = abs(t)
        out.append((a + 2) * d**3 - (a + 3) * d**2 + 1 if d <= 1 else
                   a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0)
    return out


def _coefficients(ratio: float, scale: float, attrs) -> list[float]:
    """The interpolation coefficients of the neighbours around a coordinate whose distance to
    the neighbour below it is `ratio` (in (0, 1])."""
    linear = attrs["mode"] == "linear"
    if not attrs["antialias"] or scale >= 1:
        return ([1 - ratio, ratio] if linear
                else _cubic([ratio + 1, ratio, 1 - ratio, 2 - ratio], attrs["cubic_coeff_a"]))
    reach = 1 if linear else 2
    start = math.floor(-reach / scale) + 1
    taps = [scale * (i - ratio) for i in range(start, 2 - start)]
    if linear:
        values = [max(0.0, 1 - abs(t)) for t in taps]
    else:
        values = _cubic(taps, attrs["cubic_coeff_a"])
    total = sum(values)
    return [v / total for v in values]


def axis_weights(in_size: int, out_size: int, scale: float, roi: tuple[float, float],
                 attrs) -> tuple[np.ndarray, np.ndarray | None]:
    """The (out_size, in_size) float64 interpolation matrix of one axis, and the outputs that
    take the extrapolation value (or None)."""
    x, outside = source_coordinates(out_size, in_size, scale, attrs, roi)
    weights = np.zeros((out_size, in_size))
    for i, xi in enumerate(x):
        below = math.floor(xi)
        if attrs["mode"] == "nearest":
            nearest = {"round_prefer_floor": math.ceil(xi - 0.5),
                       "round_prefer_ceil": math.floor(xi + 0.5),
                       "floor": below, "ceil": math.ceil(xi)}[attrs["nearest_mode"]]
            weights[i, min(max(nearest, 0), in_size - 1)] = 1.0
            continue
        ratio = 1.0 if xi == below else xi - below
        coeffs = np.array(_coefficients(ratio, scale, attrs))
        n = len(coeffs)
        # the n neighbours nearest x (ties to the lower), the ONNX neighbour rule
        if n % 2 == 0:
            first = below - n // 2 + (0 if xi == below else 1)
        else:
            first = below - (n - 1) // 2 + (0 if xi - below <= 0.5 else 1)
        taps = np.arange(first, first + n)
        if attrs["exclude_outside"]:
            coeffs = np.where((taps < 0) | (taps >= in_size), 0.0, coeffs)
            total = coeffs.sum()
            coeffs = coeffs / (total if total != 0 else 1.0)
        np.add.at(weights[i], np.clip(taps, 0, in_size - 1), coeffs)
    return weights, outside


def _plan(in_shape, attrs):
    """Per resized axis: (axis, weights, outside mask)."""
    return [(axis, *axis_weights(in_shape[axis], size, scale, (start, end), attrs))
            for axis, scale, size, start, end in attrs["axes"]]


def _outside_mask(shape, plan) -> np.ndarray | None:
    mask = None
    for axis, _, outside in plan:
        if outside is not None and outside.any():
            view = outside.reshape((1,) * axis + (-1,) + (1,) * (len(shape) - axis - 1))
            mask = view if mask is None else mask | view
    return None if mask is None else np.broadcast_to(mask, shape)


def _apply(x: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(moved @ weights.T.astype(moved.dtype), -1, axis)


def _resize(arrays, attrs, params):
    x = arrays[0]
    plan = _plan(x.shape, attrs)
    for axis, weights, _ in plan:
        x = _apply(x, weights, axis)
    mask = _outside_mask(x.shape, plan)
    if mask is not None:
        x = np.where(mask, x.dtype.type(attrs["extrapolation_value"]), x)
    return np.ascontiguousarray(x)


def _resize_shape(shapes, attrs, params):
    out = list(shapes[0])
    for axis, _, size, _, _ in attrs["axes"]:
        out[axis] = size
    return tuple(out)


def _nearest(attrs, params, n_inputs) -> bool:
    return attrs["mode"] == "nearest"


def _integer_mode(attrs, params, n_inputs) -> bool:
    return attrs["mode"] in ("nearest", "linear")


def integer_weights(weights: np.ndarray) -> np.ndarray:
    """Interpolation weights as integers at WEIGHT_FL fractional bits, rounded cumulatively
    along each row (nearest, ties to even), so a row that sums to 1 sums to 2^WEIGHT_FL."""
    cumulative = np.rint(np.cumsum(weights, axis=1) * 2.0 ** WEIGHT_FL).astype(np.int64)
    return np.diff(cumulative, axis=1, prepend=0)


def _resize_integer(quant, inputs, rng):
    x = inputs[0]
    attrs = quant.layer.attrs
    plan = _plan(x.data.shape, attrs)
    codes = x.data.astype(np.int64)
    if attrs["mode"] == "nearest":
        for axis, weights, _ in plan:
            codes = np.take(codes, np.argmax(weights, axis=1), axis=axis)
        out, clipped = QTensor(codes.astype(x.fmt.code_dtype), x.fmt), None
    else:
        for axis, weights, _ in plan:
            codes = _apply(codes, integer_weights(weights), axis)
        out, clipped = quant.requantize(codes, x.fmt.fl + WEIGHT_FL * len(plan), rng)
    mask = _outside_mask(out.data.shape, plan)
    if mask is not None:
        fill = constant_codes(np.array(attrs["extrapolation_value"]), out.fmt, quant.rounding,
                              rng)
        out = QTensor(np.where(mask, fill, out.data).astype(out.fmt.code_dtype), out.fmt)
    return Outcome(out, clipped)


register(OpSpec("resize", _resize, _resize_shape, keeps_format=_nearest, integer=_resize_integer,
                integer_applies=_integer_mode, float_unit=True))
