"""`rsim vectors`: RTL test vectors of one layer ($readmemh hex files and a JSON manifest)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from rsim.cli._options import data_options, dataset_for, model_options


@click.command("vectors")
@model_options
@click.option("--hw", default=None, help="Accelerator: a shipped config name or a YAML file.")
@click.option("--layer", "layer_name", required=True, help="The layer to write vectors for.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the .hex files and manifest.json.")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples (the batch) the vectors cover.")
@data_options
@click.option("--qspec", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Quantization spec YAML.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of stochastic rounding and calibration sampling.")
def vectors_command(model, hw, layer_name, out_dir, samples, data, qspec, seed) -> None:
    """Write RTL test vectors of one layer of MODEL on an accelerator: input, weight, bias,
    accumulator and output codes as $readmemh hex files plus a manifest.json of shapes,
    formats, memory layout and the reduction plan. Dynamic formats are calibrated on the data.
    """
    from rsim.quant.qspec import load_qspec, with_model_quantization
    from rsim.simulation import model_data, prepare, resolve_accelerator
    from rsim.vectors import write_vectors

    network = model.load()
    dataset = dataset_for(data, model.given)
    dataset = model_data(network, dataset)
    spec, _ = load_qspec(qspec)
    run = prepare(network, resolve_accelerator(hw, network), with_model_quantization(spec, network),
                  dataset, seed=seed)
    x, _ = next(dataset.iter_batches(samples, samples))
    run.check_batch(x, 0, dataset.source)
    manifest = write_vectors(run, layer_name, x, out_dir, seed)
    console = Console()
    console.print(f"wrote {len(manifest['files'])} vector files and manifest.json for layer "
                  f"{layer_name} ({manifest['op']}, {manifest['samples']} samples) to {out_dir}")
    for role, entry in manifest["files"].items():
        console.print(f"  {entry['file']:<18} {role:<12} shape {entry['shape']}, "
                      f"{entry['bits']}-bit words")
