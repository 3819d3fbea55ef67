"""`rsim trace show|diff|plot`: read, compare and plot simulation traces."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import traces
from rsim.cli._fmt import count, number, percent


def _result(value: float | None) -> str:
    """An end-to-end figure: whole numbers (samples, cycles) with separators, shares to 4 places."""
    if value is not None and math.isfinite(value) and value == int(value) and abs(value) > 1:
        return f"{int(value):,}"
    return number(value, 4)


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return "±0" if value == 0 else ("+" if value > 0 else "") + number(value, digits)


def _text_summary(text: str) -> str:
    """A metadata text field (YAML, qspec) in one line: its first line and the line count."""
    lines = text.strip().splitlines()
    if len(lines) <= 1:
        return text.strip() or "–"
    return f"{lines[0]} … ({len(lines)} lines)"


@click.group("trace")
def trace_group() -> None:
    """Show, compare and plot simulation traces (HDF5 files written by `rsim simulate --trace`)."""


@trace_group.command("show")
@click.argument("file", type=click.Path(path_type=Path))
def show_command(file: Path) -> None:
    """Print the run metadata and the per-layer drift table of trace FILE."""
    trace = traces.load(file)
    console = Console()
    about = Table(title=Text(f"trace {file}"), show_header=False)
    about.add_column("key", style="bold")
    about.add_column("value")
    for key, value in trace.metadata.items():
        if key == "results":
            continue
        about.add_row(key, Text(_text_summary(value) if isinstance(value, str) else str(value)))
    for key, value in trace.metadata["results"].items():
        about.add_row(f"result: {key}", _result(value))
    console.print(about)

    layers = Table(
        title="per layer (iso = layer fed the float input, prop = fed the simulated one)"
    )
    for column in ("#", "layer", "op", "formats"):
        layers.add_column(column, overflow="fold")
    for column in ("SQNR iso dB", "SQNR prop dB", "max |err|", "clipped %", "acc sat",
                   "psum sat", "cycles", "util %"):
        layers.add_column(column, justify="right")
    for index, row in enumerate(trace.rows()):
        layers.add_row(
            str(index),
            Text(row["layer"]),
            Text(row["op"] + (" (float)" if row["float_emulated"] else "")),
            Text("\n".join(f"{role}={spec}" for role, spec in row["formats"].items()) or "–"),
            number(row["sqnr_isolated_db"]),
            number(row["sqnr_propagated_db"]),
            number(row["max_abs_error"], 4),
            percent(row["clipped_share"]),
            count(row["acc_saturations"]),
            count(row["partial_sum_saturations"]),
            count(row["cycles"]),
            percent(row["utilization"]),
        )
    console.print(layers)


_DRIFT_STYLE = {"more": "red", "less": "green", "same": ""}  # how B compares with A


@trace_group.command("diff")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--tolerance", default=0.1, show_default=True, type=float,
              help="SQNR change (dB) below which a layer counts as unchanged.")
def diff_command(a: Path, b: Path, tolerance: float) -> None:
    """Compare trace B against trace A: which layers drift more or less, and by how much."""
    comparison = traces.diff(a, b, tolerance_db=tolerance)
    console = Console()
    table = Table(title=Text(f"B = {b}  vs  A = {a}"))
    for column in ("layer", "op"):
        table.add_column(column, overflow="fold")
    for column in ("SQNR prop A", "SQNR prop B", "Δ prop dB", "Δ isolated dB", "clipped % A→B",
                   "acc sat A→B", "psum sat A→B"):
        table.add_column(column, justify="right")
    table.add_column("B drifts")
    for layer in comparison.layers:
        table.add_row(
            Text(layer.name),
            Text(layer.op),
            number(layer.sqnr_propagated_db.a),
            number(layer.sqnr_propagated_db.b),
            _signed(layer.sqnr_propagated_db.delta),
            _signed(layer.sqnr_isolated_db.delta),
            f"{percent(layer.clipped_share.a)} → {percent(layer.clipped_share.b)}",
            f"{count(layer.acc_saturations.a)} → {count(layer.acc_saturations.b)}",
            f"{count(layer.partial_sum_saturations.a)} → {count(layer.partial_sum_saturations.b)}",
            Text(layer.drift, style=_DRIFT_STYLE[layer.drift]),
        )
    console.print(table)
    for verdict, layers in (("more", comparison.more_drift), ("less", comparison.less_drift)):
        if layers:
            worst = layers[0]
            console.print(
                f"B drifts {verdict} at {len(layers)} layer(s); most at '{escape(worst.name)}' "
                f"({_signed(worst.sqnr_delta_db)} dB)"
            )
    if not comparison.more_drift and not comparison.less_drift:
        console.print(f"no layer's SQNR changed by more than {tolerance} dB")
    for side, names in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        if names:
            console.print(Text(f"only in {side}: {', '.join(names)}"))
    for key, change in comparison.results.items():
        console.print(
            f"{key}: {_result(change.a)} → {_result(change.b)} ({_signed(change.delta, 4)})"
        )


@trace_group.command("plot")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), default=Path("drift.png"),
              show_default=True, help="PNG file to write.")
@click.option("--title", default=None, help="Figure title (default: the trace's file name).")
def plot_command(file: Path, out: Path, title: str | None) -> None:
    """Draw per-layer SQNR (isolated, propagated) and clipped-share bars of trace FILE as a PNG."""
    written = traces.plot(file, out, title=title)
    click.echo(f"wrote {written}")
