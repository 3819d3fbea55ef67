"""`rsim simulate`: run a model bit-accurately on an accelerator beside the float reference and
print the per-layer drift table and the totals."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from hwconfigs.loader import DEFAULT
from rsim.cli._fmt import count, number, percent
from rsim.cli._options import data_options, dataset_for, model_options, run_options


def _db(value: float | None) -> str:
    """A dB figure in the simulate table's ASCII spelling (no figure: "-")."""
    return number(value, 1, missing="-", infinities=("inf", "-inf"), nan="-")


def print_result(result, console: Console) -> None:
    """The per-layer drift table and the totals of a SimResult."""
    table = Table(title=f"rsim simulate: {result.samples} samples", title_justify="left")
    for column, justify in (("layer", "left"), ("op", "left"), ("formats: in→out, w, acc", "left"),
                            ("SQNR iso dB", "right"), ("SQNR prop dB", "right"),
                            ("max err", "right"), ("clip %", "right"), ("sat acc/psum", "right"),
                            ("cycles", "right"), ("util %", "right")):
        # names and formats wrap rather than lose their distinguishing ends
        table.add_column(column, justify=justify,
                         overflow="fold" if column in ("layer", "formats: in→out, w, acc") else "ellipsis")
    for layer in result.layers.values():
        f = layer.formats
        formats = [f"{f.get('input', '')}→{f.get('output', '')}"]
        if "weights" in f:
            formats.append(f"w {f['weights']}")
        if "accumulator" in f:
            formats.append(f"acc {f['accumulator']}")
        if layer.float_emulated:
            formats.append("(float-emulated)")
        formats = "\n".join(formats)
        schedule = layer.schedule
        table.add_row(
            layer.name, layer.op, formats, _db(layer.isolated.sqnr_db),
            _db(layer.propagated.sqnr_db),
            "-" if layer.propagated.max_abs_error is None else f"{layer.propagated.max_abs_error:.3g}",
            percent(layer.propagated.clipped_share, missing="-"),
            f"{count(layer.acc_saturations)}/{count(layer.partial_sum_saturations)}"
            + (f" (bias {layer.bias_saturations})" if layer.bias_saturations else ""),
            f"{schedule.cycles:,}" if schedule else "",
            f"{100 * schedule.utilization:.1f}" if schedule else "")
    console.print(table)
    lines = []
    if result.accuracy_float is not None:
        lines.append(f"accuracy   float {100 * result.accuracy_float:.2f} %   "
                     f"simulated {100 * result.accuracy_sim:.2f} %   (top-5 float "
                     f"{100 * result.top5_float:.2f} %, simulated {100 * result.top5_sim:.2f} %)")
    lines.append(f"agreement  {100 * result.agreement:.2f} % of samples have the same top-1 "
                 "class as the float model")
    plan = result.schedule
    lines.append(f"per inference  {plan.cycles:,} cycles ({plan.seconds * 1e6:.1f} µs at "
                 f"{plan.accelerator.array.clock_mhz:g} MHz), utilization "
                 f"{100 * plan.utilization:.1f} %, energy {plan.energy_pj * 1e-6:.3f} µJ")
    if result.trace is not None:
        lines.append(f"trace      {result.trace}")
    for line in lines:
        console.print(line)


@click.command("simulate")
@model_options
@click.option("--hw", default=None, help="Accelerator: a shipped config name or a YAML file "
              f"(default: {DEFAULT}, or ristretto-caffe for a Ristretto prototxt; see "
              "`rsim hw list`).")
@data_options
@click.option("--qspec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Quantization spec YAML: per-layer format overrides and calibration.")
@run_options
def simulate_command(model, hw, data, qspec, run) -> None:
    """Simulate MODEL on an accelerator, bit-accurate beside the float reference.

    Without MODEL, the shipped default model runs on the shipped validation digits.
    """
    from rsim import simulate

    network = model.load()
    dataset = dataset_for(data, model.given)
    console = Console()
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulate", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = simulate(network, hw=hw, inputs=dataset, qspec=qspec, options=run,
                          progress=progress)
    print_result(result, console)
