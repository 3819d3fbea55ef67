"""`rsim format SPEC`: describe a number format the way numpy's finfo does."""

from __future__ import annotations

import math

import click
from rich.console import Console
from rich.table import Table

from formats import Affine, MXFormat, parse
from formats.base import Format


def _number(value: float) -> str:
    """A value with its power of two when it is one (0.015625 (2^-6))."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    mantissa, exponent = math.frexp(abs(value))
    text = f"{value:.10g}"
    sign = "-" if value < 0 else ""
    return f"{text} ({sign}2^{exponent - 1})" if mantissa == 0.5 else text


def properties(fmt: Format) -> list[tuple[str, str]]:
    """The finfo-like rows of a format: bit count, range, precision, layout, specials."""
    rows = [("bits", str(fmt.bits)),
            ("layout", " | ".join(f"{f.name}:{f.width}" for f in fmt.layout())),
            ("max", _number(fmt.max)), ("min", _number(fmt.min))]
    if fmt.smallest_normal != fmt.smallest_positive:
        rows.append(("smallest normal", _number(fmt.smallest_normal)))
        rows.append(("smallest subnormal", _number(fmt.smallest_positive)))
    else:
        rows.append(("smallest positive", _number(fmt.smallest_positive)))
    eps = getattr(fmt, "eps", None)
    if eps is not None:
        rows.append(("eps (1.0 to next)", _number(eps)))
        rows.append(("precision (decimal digits)", f"{-math.log10(eps):.2f}" if eps < 1 else "0"))
    rows.append(("inf / NaN", f"{'yes' if fmt.has_inf else 'no'} / "
                              f"{'yes' if fmt.has_nan else 'no'}"))
    return rows


@click.command("format")
@click.argument("spec")
def format_command(spec: str) -> None:
    """Describe the number format SPEC (e.g. fixed<8,4>, fp8_e4m3fn, float<5,10,bias=14>)."""
    fmt = parse(spec)
    console = Console(highlight=False)
    console.print(f"[bold]{fmt}[/bold]: {fmt.describe()}")
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name, value in properties(fmt):
        table.add_row(name, value)
    console.print(table)
    if isinstance(fmt, MXFormat):
        element, title = fmt.element, f"sample codes of the {fmt.element} elements"
    elif isinstance(fmt, Affine) and fmt.axis is not None:
        element, title = fmt.channel(0), "sample codes of channel 0"
    else:
        element, title = fmt, "sample codes"
    samples = Table(title=title, title_justify="left")
    samples.add_column("code", justify="right")
    samples.add_column("bits")
    samples.add_column("value", justify="right")
    codes = element.sample_codes()
    for code, value in zip(codes, element.decode(codes)):
        samples.add_row(str(code), element.bit_string(code), _number(float(value)))
    console.print(samples)
