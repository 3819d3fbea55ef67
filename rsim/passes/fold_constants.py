"""Constant folding: a layer whose inputs are all constants is computed once, by its op's float
forward, and becomes a constant. It runs as a frontend builds the graph (`GraphBuilder.emit`),
since a frontend may need the value to translate what follows (a reshape target, a weight).

Only floating-point constants are folded here: integer tensors (shape arithmetic) keep the
integer semantics of their framework, which the frontend evaluates itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rsim.ops import OPS


def foldable(arrays: Sequence[np.ndarray]) -> bool:
    """Whether inputs that are all constants can be folded by the float forward."""
    return all(np.asarray(a).dtype.kind == "f" for a in arrays)


def fold(op: str, arrays: Sequence[np.ndarray], attrs: Mapping,
         params: Mapping[str, np.ndarray]) -> np.ndarray:
    """The constant output of `op` on constant inputs, in their float dtype."""
    dtype = np.result_type(*arrays) if arrays else np.float32
    typed = [np.asarray(a, dtype=dtype) for a in arrays]
    return np.asarray(OPS[op].forward(typed, attrs, {k: np.asarray(v, dtype=dtype)
                                                     for k, v in params.items()}), dtype=dtype)
