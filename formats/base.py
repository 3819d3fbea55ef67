"""The interface every number format offers, and the argument handling they all share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from formats.errors import RsimError
from formats.modes import Overflow, Rounding, as_overflow, as_rounding


@dataclass(frozen=True)
class Field:
    """One bit field of a format's code, most significant first in `Format.layout()`."""

    name: str
    width: int


class Format(ABC):
    """An immutable number format: a set of values, a spec string and integer codes.

    Subclasses are frozen dataclasses, so formats are hashable and equal by value;
    `parse(str(fmt)) == fmt` for every format.
    """

    bits: int  # width of one code in bits (a field or property of each subclass)

    @property
    @abstractmethod
    def max(self) -> float:
        """Largest finite value."""

    @property
    @abstractmethod
    def min(self) -> float:
        """Most negative finite value (0 for unsigned formats)."""

    @property
    @abstractmethod
    def smallest_positive(self) -> float:
        """Smallest value above zero."""

    @property
    def smallest_normal(self) -> float:
        """Smallest positive value with full precision (= smallest_positive without subnormals)."""
        return self.smallest_positive

    has_nan: bool = False
    has_inf: bool = False

    @abstractmethod
    def layout(self) -> tuple[Field, ...]:
        """The bit fields of one code, most significant first."""

    @abstractmethod
    def describe(self) -> str:
        """One readable line saying what the format is."""

    @abstractmethod
    def _quantize(self, flat: np.ndarray, shape: tuple[int, ...], rounding: Rounding,
                  overflow: Overflow | None, u: np.ndarray, out: np.ndarray) -> int:
        """Write the quantized values of `flat` (x raveled; x has `shape`) into `out`; return
        the count of NaN inputs."""

    @abstractmethod
    def __str__(self) -> str:
        """The canonical spec string."""

    def __repr__(self) -> str:
        return f"formats.parse({str(self)!r})"

    # -- public API shared by every format -------------------------------------------------

    def quantize(self, x, rounding: str | Rounding = "nearest_even",
                 overflow: str | Overflow | None = None,
                 rng: np.random.Generator | int | None = None,
                 dtype: type | np.dtype | None = None) -> np.ndarray:
        """Values of x on this format's grid ("fake quantization"), same shape as x.

        The result is float32 when x is float32 or dtype=np.float32, float64 otherwise (a
        float32 result is exact whenever the format's values fit float32, as 8/16-bit ones do).
        `overflow=None` is the format's own rule. Stochastic rounding draws
        u = rng.random(x.size), one per element in C order, from `rng` (a numpy Generator or an
        int seed), so a seeded run is reproducible.
        """
        flat, shape, out_dtype = as_flat(x, dtype)
        mode, over = self._modes(rounding, overflow)
        out = np.empty(flat.size, dtype=out_dtype)
        nans = self._quantize(flat, shape, mode, over, uniforms(rng, mode, flat.size), out)
        self._check_nans(nans)
        return out.reshape(shape)

    @abstractmethod
    def encode(self, x, rounding: str | Rounding = "nearest_even",
               overflow: str | Overflow | None = None,
               rng: np.random.Generator | int | None = None):
        """Integer codes of x rounded to this format (same rounding and draws as quantize)."""

    @abstractmethod
    def decode(self, codes) -> np.ndarray:
        """float64 values of codes from `encode`."""

    def _modes(self, rounding, overflow) -> tuple[Rounding, Overflow | None]:
        mode = as_rounding(rounding)
        over = None if overflow is None else as_overflow(overflow)
        self._check_modes(mode, over)
        return mode, over

    def _check_modes(self, rounding: Rounding, overflow: Overflow | None) -> None:
        """Reject modes this format cannot honour (default: all are fine)."""

    def _check_nans(self, count: int) -> None:
        if count and not self.has_nan:
            raise RsimError(
                f"{self}: {count} NaN input value(s), but this format has no NaN code; "
                "remove the NaNs (e.g. np.nan_to_num) or use a format with NaN")


class ScalarFormat(Format):
    """A format with one integer code per value: fixed point, minifloats, power of two, affine."""

    @abstractmethod
    def _encode(self, flat: np.ndarray, shape: tuple[int, ...], rounding: Rounding,
                overflow: Overflow | None, u: np.ndarray) -> tuple[np.ndarray, int]:
        """The int64 codes of `flat` (x raveled; x has `shape`) and the count of NaN inputs."""

    @abstractmethod
    def _decode(self, codes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """float64 values of int64 codes (raveled from `shape`, checked against `code_range`)."""

    def encode(self, x, rounding: str | Rounding = "nearest_even",
               overflow: str | Overflow | None = None,
               rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Integer codes (int64, same shape as x) of x rounded to this format."""
        flat, shape, _ = as_flat(x, None)
        mode, over = self._modes(rounding, overflow)
        codes, nans = self._encode(flat, shape, mode, over, uniforms(rng, mode, flat.size))
        self._check_nans(nans)
        return codes.reshape(shape)

    def decode(self, codes) -> np.ndarray:
        """float64 values of integer codes (same shape)."""
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise RsimError(f"decode {self}: codes must be integers, got dtype {arr.dtype}")
        flat = np.ascontiguousarray(arr, dtype=np.int64).ravel()
        lo, hi = self.code_range
        if flat.size and (flat.min() < lo or flat.max() > hi):
            raise RsimError(f"decode {self}: codes must lie in [{lo}, {hi}]")
        return self._decode(flat, arr.shape).reshape(arr.shape)

    def sample_codes(self) -> list[int]:
        """A few telling codes: zero, the smallest values, one, the extremes and special codes."""
        values = [0.0, self.smallest_positive, self.smallest_normal, 1.0, self.max, self.min]
        values = [v for v in values if self.quantize([v])[0] == v]
        codes = {int(c) for c in self.encode(values)}
        for name in ("inf_code", "nan_code"):
            code = getattr(self, name, -1)
            if code >= 0:
                codes.add(code)
        return sorted(codes, key=lambda c: (c < 0, abs(c)))

    def bit_string(self, code: int) -> str:
        """The code's bits (two's complement for negative codes), fields separated by spaces."""
        pattern = format(code & ((1 << self.bits) - 1), f"0{self.bits}b")
        fields, start = [], 0
        for field in self.layout():
            fields.append(pattern[start:start + field.width])
            start += field.width
        return " ".join(f for f in fields if f)

    @property
    def code_range(self) -> tuple[int, int]:
        """The smallest and largest integer `encode` returns (bit patterns: 0 .. 2^bits - 1)."""
        return 0, (1 << self.bits) - 1


def as_flat(x, dtype) -> tuple[np.ndarray, tuple[int, ...], np.dtype]:
    """x as a flat contiguous float32/float64 array, its shape, and the result dtype."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise RsimError(f"quantize: input must be real numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if dtype is None:
        out_dtype = arr.dtype
    else:
        out_dtype = np.dtype(dtype)
        if out_dtype not in (np.float32, np.float64):
            raise RsimError(f"quantize: dtype must be float32 or float64, got {out_dtype}")
    return np.ascontiguousarray(arr).ravel(), arr.shape, out_dtype


def int_dtype_for(lo: int, hi: int) -> np.dtype:
    """The narrowest signed numpy integer type that holds every integer in [lo, hi]."""
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


_NO_UNIFORMS = np.zeros(1)


def uniforms(rng, rounding: Rounding, n: int) -> np.ndarray:
    """The uniform [0, 1) draws stochastic rounding needs (a dummy array otherwise)."""
    if rounding is not Rounding.STOCHASTIC:
        return _NO_UNIFORMS
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise RsimError("rounding=stochastic needs rng=<numpy.random.Generator or int seed> "
                        "(seed it for a reproducible run)")
    return rng.random(n)


def check_int(value, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """value as an int within [lo, hi], or RsimError naming `what` and the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise RsimError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise RsimError(f"{what} must be in {bounds}, got {value}")
    return value
