"""Layout ops: identity, concat, flatten, reshape, transpose, squeeze, unsqueeze, pad.

Attributes (normalised, every axis non-negative): concat `axis`; flatten `axis` (output is 2-D:
product of the axes before it, product of the rest); reshape `shape` (ONNX meaning: 0 copies the
input's dimension unless `allowzero`, -1 is inferred; where the batch is carried through, the
frontend writes 0 for the leading dimensions up to the batch's, or under `allowzero` (where 0
is a real size) sets `copy_leading`, the number of leading dimensions taken from the input
whatever the target says, or -1 for a dimension the batch is merged into); transpose `perm`;
squeeze `axes`; unsqueeze `axes` (positions in the output); pad `pads` (one (begin, end) pair
per axis, negative crops), `mode` (constant | reflect | edge | wrap) and `value`.

On codes, the layout ops and zero padding move codes unchanged (the output keeps the input's
format); concat requantizes each input to the output format, then joins them.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.requant import requantize_shift
from rsim.ops.registry import OpSpec, always, register, same_shape
from rsim.quant.tensor import Outcome, QTensor


def _concat_shape(shapes, attrs, params):
    axis = attrs["axis"]
    first = tuple(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first, strict=True)) if i != axis
        ):
            raise ValueError(f"concat inputs {[tuple(x) for x in shapes]} differ off axis {axis}")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def _concat(arrays, attrs, params):
    return np.concatenate(arrays, axis=attrs["axis"])


def _flatten_shape(shapes, attrs, params):
    x, axis = tuple(shapes[0]), attrs["axis"]
    return (math.prod(x[:axis]), math.prod(x[axis:]))


def _flatten(arrays, attrs, params):
    x = arrays[0]
    return x.reshape(_flatten_shape([x.shape], attrs, params))


def reshape_target(in_shape, shape, allowzero: bool = False,
                   copy_leading: int = 0) -> tuple[int, ...]:
    """The output shape of an ONNX Reshape of `in_shape` to `shape` (0 = copy unless allowzero,
    -1 = inferred; the first `copy_leading` dimensions are the input's)."""
    out = [in_shape[i] if (d == 0 and not allowzero) or i < copy_leading else d
           for i, d in enumerate(shape)]
    total = math.prod(in_shape)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {tuple(in_shape)} to {tuple(shape)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise ValueError(f"cannot reshape {tuple(in_shape)} to {tuple(shape)}")
    return tuple(out)


def _reshape_shape(shapes, attrs, params):
    return reshape_target(tuple(shapes[0]), attrs["shape"], attrs.get("allowzero", False),
                          attrs.get("copy_leading", 0))


def _reshape(arrays, attrs, params):
    x = arrays[0]
    return x.reshape(_reshape_shape([x.shape], attrs, params))


def _transpose_shape(shapes, attrs, params):
    x = tuple(shapes[0])
    return tuple(x[p] for p in attrs["perm"])


def _transpose(arrays, attrs, params):
    return np.ascontiguousarray(np.transpose(arrays[0], attrs["perm"]))


def _squeeze_shape(shapes, attrs, params):
    x = tuple(shapes[0])
    if any(x[a] != 1 for a in attrs["axes"]):
        raise ValueError(f"squeeze axes {attrs['axes']} of shape {x} are not all of size 1")
    return tuple(d for i, d in enumerate(x) if i not in attrs["axes"])


def _squeeze(arrays, attrs, params):
    return arrays[0].reshape(_squeeze_shape([arrays[0].shape], attrs, params))


def _unsqueeze_shape(shapes, attrs, params):
    rest = iter(shapes[0])
    rank = len(shapes[0]) + len(attrs["axes"])
    return tuple(1 if i in attrs["axes"] else next(rest) for i in range(rank))


def _unsqueeze(arrays, attrs, params):
    return arrays[0].reshape(_unsqueeze_shape([arrays[0].shape], attrs, params))


def _pad_shape(shapes, attrs, params):
    return tuple(d + b + e for d, (b, e) in zip(shapes[0], attrs["pads"], strict=True))


def _pad(arrays, attrs, params):
    x = arrays[0]
    crop = tuple(
        slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, attrs["pads"], strict=True)
    )
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in attrs["pads"]]
    if attrs["mode"] == "constant":
        return np.pad(x, widths, mode="constant", constant_values=x.dtype.type(attrs["value"]))
    return np.pad(x, widths, mode=attrs["mode"])


def _moves_codes(quant, inputs, rng):
    """A layout op on codes: codes below 2^53 are exact in float64, so the float op moves them
    unchanged."""
    x = inputs[0]
    data = quant.layer.forward(x.data.astype(np.float64), dtype=np.float64)
    return Outcome(QTensor(data.astype(x.data.dtype), x.fmt))


def _concat_integer(quant, inputs, rng):
    out_fl = quant.out_fmt.fl
    parts = [requantize_shift(t.data, t.fmt.fl - out_fl, out_bits=64, rounding=quant.rounding,
                              rng=rng) for t in inputs]
    return quant.saturated_codes(np.concatenate(parts, axis=quant.layer.attrs["axis"]))


def _zero_pad(attrs, params, n_inputs) -> bool:
    return attrs["mode"] == "constant" and attrs["value"] == 0


def _identity(arrays, attrs, params):
    return arrays[0]


register(OpSpec("concat", _concat, _concat_shape, integer=_concat_integer, float_unit=True))
# frontends emit identity for operators that pass their input on (Dropout at inference, Split
# into one part); rsim.passes.identities removes them
register(OpSpec("identity", _identity, same_shape, keeps_format=always, commutes=True,
                integer=_moves_codes))
for _name, _fn, _shape in [
    ("flatten", _flatten, _flatten_shape),
    ("reshape", _reshape, _reshape_shape),
    ("transpose", _transpose, _transpose_shape),
    ("squeeze", _squeeze, _squeeze_shape),
    ("unsqueeze", _unsqueeze, _unsqueeze_shape),
]:
    register(OpSpec(_name, _fn, _shape, keeps_format=always, commutes=True,
                    integer=_moves_codes))
register(OpSpec("pad", _pad, _pad_shape, keeps_format=_zero_pad, integer=_moves_codes,
                integer_applies=_zero_pad))
