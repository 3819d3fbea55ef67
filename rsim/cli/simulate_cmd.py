"""`rsim simulate`: run a model bit-accurately on an accelerator beside the float reference and
print the per-layer drift table and the totals."""

from __future__ import annotations

import shlex
import sys
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

from formats.errors import RsimError
from rsim.cli._fmt import count, number, parse_dims, percent


def data_options(function):
    """The data-file options shared by the commands that read input data."""
    options = [
        click.option("--data", type=click.Path(path_type=Path), default=None,
                     help="Input data: .npz (x, optional y), .npy, HDF5, .csv[.gz] or a folder "
                          "of images. Default: the shipped validation digits (default model)."),
        click.option("--x-name", default="x", show_default=True,
                     help="Array/dataset holding the samples in .npz and HDF5 files."),
        click.option("--y-name", default=None, help="Array/dataset holding the labels "
                     "(default: y when present)."),
        click.option("--label-column", type=int, default=None,
                     help="CSV column holding the label (default: none)."),
        click.option("--sample-shape", default=None, metavar="DIMS",
                     help="Reshape each sample, e.g. 1x28x28."),
        click.option("--resize", default=None, metavar="N|HxW",
                     help="Images: resize (shorter side to N, or exactly HxW)."),
        click.option("--crop", default=None, metavar="N|HxW", help="Images: center crop."),
        click.option("--mean", default=None, metavar="M[,M,M]",
                     help="Images: subtract a mean (one value or one per channel)."),
        click.option("--scale", type=float, default=None, help="Images: multiply after the mean."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR"]), default=None,
                     help="Images: channel order."),
        click.option("--grayscale", is_flag=True, default=False, help="Images: one channel."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _size(text: str | None, what: str) -> tuple[int, ...] | int | None:
    """--resize/--crop: N (one number, which ImagePreprocess reads as the shorter side or a
    square) or HxW."""
    if text is None:
        return None
    dims = parse_dims(text, what, "N or HxW of positive integers")
    return dims[0] if len(dims) == 1 else dims


def open_data(data: Path | None, model_given: bool, x_name: str, y_name: str | None,
              label_column: int | None, sample_shape: str | None, resize: str | None,
              crop: str | None, mean: str | None, scale: float | None,
              channel_order: str | None, grayscale: bool):
    """The dataset the data options describe (the shipped digits for the default model)."""
    from rsim.data import ImagePreprocess, open_dataset
    from rsim.shipped import default_data_path

    if data is None:
        if model_given:
            raise RsimError("--data is required with a MODEL (the shipped digits only fit the "
                            "default model)")
        data = default_data_path()
    image_options = {key: value for key, value in (
        ("resize", _size(resize, "--resize")), ("center_crop", _size(crop, "--crop")),
        ("mean", tuple(float(v) for v in mean.split(",")) if mean else None),
        ("scale", scale), ("channel_order", channel_order),
        ("grayscale", grayscale or None)) if value is not None}
    try:
        preprocess = ImagePreprocess(**image_options) if image_options else None
    except ValueError as error:
        raise RsimError(f"image preprocessing options: {error}") from None
    return open_dataset(data, x_name=x_name, y_name=y_name, label_column=label_column,
                        sample_shape=None if sample_shape is None
                        else parse_dims(sample_shape, "--sample-shape"),
                        preprocess=preprocess)


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
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hw", default=None, help="Accelerator: a shipped config name or a YAML file "
              "(default: the default config; see `rsim hw list`).")
@data_options
@click.option("--qspec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Quantization spec YAML: per-layer format overrides and calibration.")
@click.option("--trace", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write an HDF5 trace here.")
@click.option("--trace-tensors", is_flag=True, help="Also store every layer's tensors in the "
              "trace (float reference, codes, decoded values).")
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Simulate only the first N samples.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of stochastic rounding and calibration sampling.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Batches simulated at once, each in memory (default: NUMBA_NUM_THREADS, "
              "i.e. the CPU count, at most 8); results do not depend on it.")
def simulate_command(model, hw, data, x_name, y_name, label_column, sample_shape, resize, crop,
                     mean, scale, channel_order, grayscale, qspec, trace, trace_tensors, batch,
                     limit, seed, threads) -> None:
    """Simulate MODEL on an accelerator, bit-accurate beside the float reference.

    Without MODEL, the shipped default model runs on the shipped validation digits.
    """
    from rsim import simulate
    from rsim.loader import load
    from rsim.shipped import default_model_path

    if trace_tensors and trace is None:
        raise RsimError("--trace-tensors needs --trace FILE")
    network = load(model or default_model_path())
    dataset = open_data(data, model is not None, x_name, y_name, label_column, sample_shape,
                        resize, crop, mean, scale, channel_order, grayscale)
    console = Console()
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulate", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = simulate(network, hw=hw, inputs=dataset, qspec=qspec, trace=trace,
                          batch_size=batch, seed=seed, limit=limit, trace_tensors=trace_tensors,
                          progress=progress, command=shlex.join(["rsim", *sys.argv[1:]]),
                          threads=threads)
    print_result(result, console)
