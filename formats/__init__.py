"""Number formats, exact to the bit: fixed point, minifloat, power of two, integer affine and
OCP MX block formats, with one rounding/overflow vocabulary and a spec-string grammar.

`parse(spec)` turns a spec string into a `Format`; `str(fmt)` gives the canonical spec back.
"""

from formats.affine import Affine
from formats.base import Field, Format, ScalarFormat
from formats.dfp import choose_fl, dfp_format, integer_length
from formats.errors import RsimError
from formats.field import FormatField
from formats.fixed import FixedPoint
from formats.minifloat import Minifloat, RistrettoMinifloat
from formats.modes import Overflow, Rounding, as_overflow, as_rounding
from formats.mx import MXCodes, MXFormat
from formats.pow2 import PowerOfTwo
from formats.register import Register
from formats.spec import parse

__all__ = [
    "Affine",
    "Field",
    "FixedPoint",
    "Format",
    "FormatField",
    "MXCodes",
    "MXFormat",
    "Minifloat",
    "Overflow",
    "PowerOfTwo",
    "Register",
    "RistrettoMinifloat",
    "Rounding",
    "RsimError",
    "ScalarFormat",
    "as_overflow",
    "as_rounding",
    "choose_fl",
    "dfp_format",
    "integer_length",
    "parse",
]
