"""`rsim info [MODEL]`: the layers of a model (op, shapes, parameters, MACs) and their totals."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from formats.errors import RsimError
from rsim.cli._options import ModelOptions, model_options
from rsim.shipped import default_model_path


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


@click.command("info")
@model_options
@click.option(
    "--batch",
    type=int,
    default=None,
    help="Batch size for shapes and MACs (default: the batch bound at import).",
)
def info_command(model: ModelOptions, batch: int | None) -> None:
    """Show MODEL's layers (op, input/output shapes, parameters, MACs) and totals.

    Without MODEL, show the default model shipped with rsim.
    """
    net = model.load()
    path = model.path or default_model_path()
    if not net.is_bound:
        dims = ", ".join(
            f"{n}=" + "x".join("?" if d is None else str(d) for d in spec)
            for n, spec in net.input_specs.items()
        )
        raise RsimError(
            f"{path} has symbolic input dimensions ({dims}); give them with --input-shape NAME=DIMS"
        )
    shapes = net.shapes(batch)
    batch = net.import_batch if batch is None else batch
    table = Table(title=f"{path.name}  (batch {batch})", title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("op", "left"),
        ("input", "left"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # wrap long names, never cut
    for index, layer in enumerate(net.layers):
        table.add_row(
            str(index),
            layer.name,
            layer.op,
            ", ".join(_dims(shapes[t]) for t in layer.inputs),
            _dims(shapes[layer.outputs[0]]),
            f"{layer.param_count:,}",
            f"{layer.macs(batch):,}",
        )
    table.add_section()
    table.add_row(
        "",
        "total",
        f"{len(net.layers)} layers",
        "",
        "",
        f"{net.param_count:,}",
        f"{net.macs(batch):,}",
    )
    console = Console()
    console.print(f"model  {path}\nsha256 {net.sha256}")
    console.print("inputs  " + ", ".join(f"{n} {_dims(shapes[n])}" for n in net.inputs))
    console.print("outputs " + ", ".join(f"{n} {_dims(net.shape(n, batch))}" for n in net.outputs))
    console.print(table)
