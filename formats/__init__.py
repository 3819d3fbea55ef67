"""Number formats, exact to the bit: fixed point, minifloat, power of two, integer affine and
OCP MX block formats, with one rounding/overflow vocabulary and a spec-string grammar.

`parse(spec)` turns a spec string into a `Format`; `str(fmt)` gives the canonical spec back.
"""

from formats.base import Field, Format
from formats.errors import RsimError
from formats.field import FormatField
from formats.fixed import FixedPoint
from formats.minifloat import Minifloat, RistrettoMinifloat
from formats.modes import Overflow, Rounding, as_overflow, as_rounding
from formats.spec import parse

__all__ = [
    "Field",
    "FixedPoint",
    "Format",
    "Minifloat",
    "FormatField",
    "Overflow",
    "RistrettoMinifloat",
    "Rounding",
    "RsimError",
    "as_overflow",
    "as_rounding",
    "parse",
]
