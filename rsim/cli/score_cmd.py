"""`rsim score`: top-1/top-5 (and the loss where the net has one) of MODEL in float and on an
accelerator, as `caffe test` reports them."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rsim.cli._options import ModelOptions, data_options, dataset_for, model_options
from rsim.metrics import TIE_RULES


def default_batch(network) -> int:
    """A Caffe data layer's batch size (the prototxt's TEST batch), else 256."""
    spec = network.input_specs[network.inputs[0]]
    return spec[0] if spec and spec[0] and spec[0] > 1 else 256


@click.command("score")
@model_options
@click.option("--hw", default=None, help="Accelerator config (default: mid-ws-int8, or "
              "ristretto-caffe for a Ristretto prototxt).")
@click.option("--qspec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Quantization spec YAML (a Ristretto prototxt carries its own).")
@data_options
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Batches to score, as `caffe test -iterations` (default: all the data).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Samples per batch (default: a Caffe data layer's batch size, else 256).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of stochastic rounding.")
@click.option("--ties", type=click.Choice(list(TIE_RULES)), default="first", show_default=True,
              help="How tied top logits rank: first (lower class index), last (Caffe before "
                   "2017), pessimistic (Caffe since 2017).")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def score_command(model: ModelOptions, hw, qspec, data, iterations, batch, seed, ties,
                  output) -> None:
    """Score MODEL on labelled data in float and on an accelerator: top-1, top-5 and the loss,
    each the mean over batches, as `caffe test` reports them."""
    from rsim.scoring import score
    from rsim.simulation import resolve_accelerator

    network = model.load()
    dataset = dataset_for(data, model.given)
    accelerator = resolve_accelerator(hw, network)
    result = score(network, accelerator, dataset, qspec=qspec, iterations=iterations,
                   batch_size=batch or default_batch(network), seed=seed, ties=ties)
    if output == "json":
        click.echo(json.dumps(result.as_dict() | {"hw": accelerator.name}, indent=1))
        return
    table = Table(title=f"rsim score: {result.samples} samples in {result.batches} batches, "
                        f"on {accelerator.name}", title_justify="left")
    for column in ("", "float", "quantized"):
        table.add_column(column, justify="left" if not column else "right")
    for label, a, b, as_percent in (("top-1", result.top1_float, result.top1_quantized, True),
                                    ("top-5", result.top5_float, result.top5_quantized, True),
                                    ("loss", result.loss_float, result.loss_quantized, False)):
        if a is not None:
            table.add_row(label, *(f"{100 * v:.2f} %" if as_percent else f"{v:.4f}"
                                   for v in (a, b)))
    console = Console()
    console.print(table)
    console.print(f"ties: {ties}: {TIE_RULES[ties]}")
