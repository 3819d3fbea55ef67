"""The option groups several commands share, each turned into one object before the command runs:
`model_options` -> `model: ModelOptions` (MODEL, --weights, --input-shape), `data_options` ->
`data: DataOptions | None` (None without --data), `run_options` -> `run: RunOptions`."""

from __future__ import annotations

import functools
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from formats.errors import RsimError
from rsim.cli._fmt import parse_dims

_DATA_KEYS = ("data", "x_name", "y_name", "label_column", "sample_shape", "resize", "crop",
              "mean", "scale", "channel_order", "grayscale")
_RUN_KEYS = ("batch", "limit", "seed", "threads", "trace", "trace_tensors")


@dataclass(frozen=True)
class ModelOptions:
    """The model a command reads: MODEL (None: the shipped default model), its separate
    weights file (a Caffe .caffemodel) and bound input shapes."""

    path: Path | None
    weights: Path | None
    input_shapes: dict[str, tuple[int, ...]]

    @property
    def given(self) -> bool:
        return self.path is not None

    def load(self):
        """The Network, after telling on stderr what the user should know about it (a Caffe
        net without weights runs on random ones)."""
        from rsim.loader import load
        from rsim.shipped import default_model_path

        network = load(self.path or default_model_path(), weights=self.weights,
                       input_shapes=self.input_shapes or None)
        for note in network.notes:
            click.echo(f"rsim: note: {note}", err=True)
        return network


def parse_input_shapes(specs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """NAME=1x3x224x224 (or NAME=1,3,224,224) options as {name: shape}."""
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = parse_dims(dims)
        except ValueError:
            raise RsimError(
                f"--input-shape {spec!r} is not NAME=DIMS (e.g. input=1x3x224x224)"
            ) from None
    return shapes


def model_options(function):
    """MODEL, --weights and --input-shape; the command receives `model: ModelOptions`."""
    options = [
        click.argument("model", required=False, type=click.Path(dir_okay=False,
                                                                path_type=Path)),
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Weights file of a Caffe MODEL.prototxt (.caffemodel); without it a "
                          "Caffe net gets seeded random weights."),
        click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=DIMS",
                     help="Bind an input's symbolic dimensions, e.g. input=1x3x224x224 "
                          "(repeatable)."),
    ]

    @functools.wraps(function)
    def command(**kwargs):
        model = ModelOptions(kwargs.pop("model"), kwargs.pop("weights"),
                             parse_input_shapes(kwargs.pop("input_shape")))
        return function(model=model, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command


def _size(text: str | None, what: str) -> tuple[int, ...] | int | None:
    """--resize/--crop: N (one number, which ImagePreprocess reads as the shorter side or a
    square) or HxW."""
    if text is None:
        return None
    dims = parse_dims(text, what, "N or HxW of positive integers")
    return dims[0] if len(dims) == 1 else dims


def _data(data: Path | None, x_name: str, y_name: str | None, label_column: int | None,
          sample_shape: str | None, resize: str | None, crop: str | None, mean: str | None,
          scale: float | None, channel_order: str | None, grayscale: bool):
    from rsim.datasets import DataOptions, ImagePreprocess

    image_options = {key: value for key, value in (
        ("resize", _size(resize, "--resize")), ("center_crop", _size(crop, "--crop")),
        ("mean", tuple(float(v) for v in mean.split(",")) if mean else None),
        ("scale", scale), ("channel_order", channel_order),
        ("grayscale", grayscale or None)) if value is not None}
    try:
        preprocess = ImagePreprocess(**image_options) if image_options else None
    except ValueError as error:
        raise RsimError(f"image preprocessing options: {error}") from None
    if data is None:
        return None
    return DataOptions(data, x_name, y_name, label_column,
                       None if sample_shape is None else parse_dims(sample_shape,
                                                                    "--sample-shape"),
                       preprocess)


def data_options(function):
    """The data-file options; the command receives them as `data: DataOptions | None`."""
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

    @functools.wraps(function)
    def command(**kwargs):
        values = {key: kwargs.pop(key) for key in _DATA_KEYS}
        return function(data=_data(**values), **kwargs)

    for option in reversed(options):
        command = option(command)
    return command


def run_options(function):
    """Batch, limit, seed, threads and trace options; the command receives `run: RunOptions`."""
    from rsim.options import RunOptions

    options = [
        click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True,
                     help="Samples per batch."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Use only the first N samples."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of stochastic rounding and calibration sampling."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Batches run at once, each in memory (default: NUMBA_NUM_THREADS, "
                          "i.e. the CPU count, at most 8); results do not depend on it."),
        click.option("--trace", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write an HDF5 trace here."),
        click.option("--trace-tensors", is_flag=True, help="Also store every layer's tensors "
                     "in the trace (float reference, codes, decoded values)."),
    ]

    @functools.wraps(function)
    def command(**kwargs):
        values = {key: kwargs.pop(key) for key in _RUN_KEYS}
        if values["trace_tensors"] and values["trace"] is None:
            raise RsimError("--trace-tensors needs --trace FILE")
        run = RunOptions.of(what="options", batch_size=values.pop("batch"),
                            command=shlex.join(["rsim", *sys.argv[1:]]), **values)
        return function(run=run, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command


def dataset_for(data, model_given: bool):
    """The dataset `data` describes; without --data, the shipped digits for the default model."""
    from rsim.datasets import open_dataset
    from rsim.shipped import default_data_path

    if data is not None:
        return data.open()
    if model_given:
        raise RsimError("--data is required with a MODEL (the shipped digits only fit the "
                        "default model)")
    return open_dataset(default_data_path())
