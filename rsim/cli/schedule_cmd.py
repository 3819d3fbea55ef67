"""`rsim schedule`: map a model's layers onto an accelerator, or rerun a SCALE-Sim input."""

from __future__ import annotations

import csv
import io
import json

import click

import hwconfigs
from formats.errors import RsimError
from rsim import scalesim_io
from rsim.cli._options import ModelOptions, model_options
from rsim.schedule import OS_FILLS, ROW_COLUMNS, schedule, schedule_rows

FORMATS = ("table", "csv", "json")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_table(columns: tuple[str, ...], rows: list[dict]) -> str:
    """Rows as right-aligned text columns (the first column left-aligned)."""
    cells = [list(columns)] + [[_cell(row[column]) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [line[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def render_csv(columns: tuple[str, ...], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def load_layers(model: ModelOptions, batch: int):
    """GEMM work of a model file: a SCALE-Sim topology CSV, or any model `rsim.load` reads."""
    if model.path.suffix.lower() == ".csv":
        return scalesim_io.read_topology(model.path, batch=batch)
    from rsim.schedule.from_network import network_work

    return network_work(model.load(), batch=batch)


@click.command("schedule")
@model_options
@click.option("--hw", "hw_config", default=None,
              help=f"shipped config name or YAML path (default: {hwconfigs.DEFAULT})")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="images per inference; multiplies M")
@click.option("--format", "output", default="table", show_default=True,
              type=click.Choice(FORMATS), help="output format")
@click.option("--os-fill", default="scalesim", show_default=True, type=click.Choice(OS_FILLS),
              help="OS fill term: scalesim (R, SCALE-Sim 3.0.0) or paper (2R)")
@click.option("--scalesim-config", type=click.Path(dir_okay=False),
              help="SCALE-Sim .cfg: print SCALE-Sim COMPUTE_REPORT rows instead")
@click.option("--scalesim-topology", type=click.Path(dir_okay=False),
              help="SCALE-Sim topology CSV (conv or gemm format), with --scalesim-config")
def schedule_command(model: ModelOptions, hw_config: str | None, batch: int, output: str,
                     os_fill: str, scalesim_config: str | None,
                     scalesim_topology: str | None) -> None:
    """Per-layer GEMM shape, folds, cycles, utilization, traffic and energy of MODEL on --hw.

    MODEL is an ONNX/Caffe model or a SCALE-Sim topology CSV. With --scalesim-config and
    --scalesim-topology (and no MODEL) the output has SCALE-Sim's COMPUTE_REPORT.csv columns.
    """
    if scalesim_config or scalesim_topology:
        if not (scalesim_config and scalesim_topology) or model.given or hw_config or batch != 1:
            raise RsimError("--scalesim-config and --scalesim-topology go together, without "
                            "MODEL, --hw or --batch (SCALE-Sim runs batch 1)")
        config = scalesim_io.read_config(scalesim_config)
        layers = scalesim_io.read_topology(scalesim_topology)
        report = scalesim_io.compute_report(config, layers, os_fill=os_fill)
        if output == "csv":
            click.echo(scalesim_io.format_compute_report(report), nl=False)
            return
        columns = scalesim_io.COMPUTE_REPORT_COLUMNS
        rows = [dict(zip(columns, values)) for values in report]
        if output == "json":
            click.echo(json.dumps(rows, indent=1))
        else:
            click.echo(render_table(columns, rows), nl=False)
        return
    if not model.given:
        raise RsimError("give a MODEL (or --scalesim-config with --scalesim-topology)")
    accel = hwconfigs.load(hw_config or hwconfigs.DEFAULT)
    result = schedule(load_layers(model, batch), accel, batch=batch, os_fill=os_fill)
    rows = schedule_rows(result)
    if output == "csv":
        click.echo(render_csv(ROW_COLUMNS, rows), nl=False)
    elif output == "json":
        click.echo(json.dumps({"model": str(model.path), "hw": accel.name, "batch": batch,
                               "os_fill": os_fill, "layers": rows[:-1], "total": rows[-1]},
                              indent=1))
    else:
        click.echo(f"{model.path} on {accel.name} ({accel.array.rows}x{accel.array.cols} "
                   f"{accel.array.dataflow.upper()}), batch {batch}")
        click.echo(render_table(ROW_COLUMNS, rows), nl=False)
