"""`FormatField`: the pydantic type for a format in configs: a spec string in, a spec string out."""

from __future__ import annotations

from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from formats.base import Format
from formats.spec import parse

FormatField = Annotated[
    Format,
    PlainValidator(parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "number format spec, e.g. fixed<8,4>, "
                    "fp8_e4m3fn, float<5,10,subnormals=false>"}),
]
