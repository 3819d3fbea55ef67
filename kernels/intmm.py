"""Exact int8 matrix products on an integer unit: `torch._int_mm` (int8 x int8 -> int32).

The integer kernels get their exact sums from float32 BLAS by default (exact while every partial
sum is an integer below 2^24). Where torch is installed (rsim's `train` extra) and the CPU has
int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX), `torch._int_mm` computes int8
products in int32, exact while |K·max|a|·max|b|| < 2^31, at several times float32 BLAS's rate.
On CPUs without them torch (2.13, CPU build) falls back to a plain loop: 0.2-1.4 GMAC/s
measured on the AVX2-only EPYC this was written on, against 10-84 GMAC/s for numpy's float32
BLAS on the same shape (onnxruntime's MatMulInteger: 5-9 GMAC/s), so it is not chosen there.

RSIM_INT_BACKEND=numpy|torch|auto (default auto) chooses; `set_int_backend` does the same at run
time (tests force each backend). Both give the same results bit for bit; only speed differs.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache

import numpy as np

from formats.errors import RsimError

BACKENDS = ("auto", "numpy", "torch")
INT32_EXACT = 1 << 31  # |Σ| below this: an int32 accumulator is exact
_INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

_chosen: str | None = None  # set_int_backend's choice; None: RSIM_INT_BACKEND


def set_int_backend(name: str | None) -> None:
    """Use `name` ('numpy', 'torch' or 'auto') from now on; None returns to RSIM_INT_BACKEND."""
    global _chosen
    if name is not None:
        _resolve(name, "set_int_backend")
    _chosen = name


def int_backend() -> str:
    """The backend in use: 'torch' or 'numpy'."""
    if _chosen is not None:
        return _resolve(_chosen, "set_int_backend")
    return _resolve(os.environ.get("RSIM_INT_BACKEND", "auto"), "RSIM_INT_BACKEND")


@cache
def _resolve(name: str, what: str) -> str:
    if name not in BACKENDS:
        raise RsimError(f"{what}: must be one of {', '.join(BACKENDS)}, got {name!r}")
    has_torch = importlib.util.find_spec("torch") is not None
    if name == "torch" and not has_torch:
        raise RsimError(f"{what}: the torch backend needs torch (pip install -e '.[train]')")
    if name == "auto":
        return "torch" if has_torch and _cpu_has_int8_dot() else "numpy"
    return name


def _cpu_has_int8_dot() -> bool:
    """Whether /proc/cpuinfo lists an int8 dot-product instruction set (False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next((line.split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in _INT8_DOT_FLAGS)


def int8_matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray | None:
    """a @ b as exact int32 on the integer unit when the torch backend is active, a and b are
    2-D int8 and `bound` (>= every |partial sum|) is below 2^31; None otherwise (the caller
    takes float BLAS)."""
    if (bound >= INT32_EXACT or a.dtype != np.int8 or b.dtype != np.int8
            or int_backend() != "torch"):  # fmt: skip
        return None
    import torch

    return torch._int_mm(torch.from_numpy(np.ascontiguousarray(a)),
                         torch.from_numpy(np.ascontiguousarray(b))).numpy()  # fmt: skip
