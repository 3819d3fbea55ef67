"""Cast of a float tensor to a narrower float type (ONNX Cast to FLOAT16 / BFLOAT16): the values
are rounded to that type's grid (nearest even, overflow to ±inf as IEEE does) and carried on in the
float path's dtype. Attribute: `format`, the target's spec string (`fp16`, `bf16`)."""

from __future__ import annotations

from formats import parse
from rsim.ops.registry import OpSpec, register, same_shape


def _cast_forward(arrays, attrs, params):
    x = arrays[0]
    return parse(attrs["format"]).quantize(x, dtype=x.dtype)


register(OpSpec("cast", _cast_forward, same_shape))
