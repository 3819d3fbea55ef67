"""`rsim quantize`: search the narrowest formats that keep MODEL's accuracy within a margin, as
Ristretto's `ristretto quantize` does (--search ristretto) or per layer on the accelerator's
integer datapath (--search per-layer), and write the result as a Ristretto prototxt or a qspec."""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from formats.errors import RsimError
from rsim.cli._options import ModelOptions, data_options, dataset_for, model_options
from rsim.cli.score_cmd import default_batch
from rsim.metrics import TIE_RULES
from rsim.search.ristretto import MODES


@click.command("quantize")
@model_options
@data_options
@click.option("--trimming-mode", type=click.Choice(MODES), default="dynamic_fixed_point",
              show_default=True, help="Ristretto's trimming mode.")
@click.option("--error-margin", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Largest top-1 loss against float, in percent.")
@click.option("--search", "how", type=click.Choice(["ristretto", "per-layer"]),
              default="ristretto", show_default=True,
              help="ristretto: Ristretto's three network-wide sweeps, exactly; per-layer: bits "
                   "per layer and accumulator widths on --hw's integer datapath.")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Batches scored per design (default: all the data).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Samples per batch (default: a Caffe data layer's batch size, else 256).")
@click.option("--hw", default=None, help="Accelerator of the per-layer search (default: "
              "mid-ws-int8).")
@click.option("--ties", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True,
              help="Ristretto's rounding ties: gpu (to even) or cpu (away from zero).")
@click.option("--accuracy-ties", type=click.Choice(list(TIE_RULES)), default="first",
              show_default=True, help="How tied top logits rank when scoring (see rsim score).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the result: a .prototxt (Ristretto layers; Caffe models) or a qspec "
                   ".yaml.")
def quantize_command(model: ModelOptions, data, trimming_mode, error_margin, how, iterations,
                     batch, hw, ties, accuracy_ties, out) -> None:
    """Find the narrowest formats of MODEL that keep top-1 within --error-margin of float."""
    import hwconfigs
    from rsim.search import per_layer, ristretto
    from rsim.search.evaluate import load_batches
    from rsim.simulation import model_data

    if out is not None and out.suffix.lower() not in (".prototxt", ".yaml", ".yml"):
        raise RsimError(f"--out {out}: write a .prototxt (Ristretto) or a .yaml (qspec)")
    if out is not None and out.suffix.lower() == ".prototxt" and (
            model.path is None or model.path.suffix.lower() != ".prototxt"):
        raise RsimError(f"--out {out}: a Ristretto prototxt is written from a Caffe MODEL; "
                        "write a qspec .yaml for other models")
    if how == "per-layer" and trimming_mode != "dynamic_fixed_point":
        raise RsimError("--search per-layer allocates dynamic fixed point widths; use "
                        "--trimming-mode dynamic_fixed_point")
    network = model.load()
    dataset = model_data(network, dataset_for(data, model.given))
    scored = load_batches(network, dataset, batch or default_batch(network), iterations,
                          accuracy_ties)
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("quantize", total=None)

        def progress(what: str) -> None:
            bar.update(task, description=f"scoring {what}")

        if how == "ristretto":
            found = ristretto.search(scored, trimming_mode, error_margin, ties, progress)
        else:
            accelerator = hwconfigs.load(hw or hwconfigs.DEFAULT)
            found = per_layer.search(scored, accelerator, error_margin, progress)
            reference = ristretto.search(scored, "dynamic_fixed_point", error_margin, ties,
                                         progress)
    if how == "ristretto":
        for line in found.lines:
            console.print(line, highlight=False)
        _write_ristretto(found, model, network, out, ties, console)
    else:
        _report_per_layer(found, reference, network, accelerator, console)
        _write_per_layer(found, model, network, accelerator, scored, out, console)


def _write_ristretto(found, model: ModelOptions, network, out: Path | None, ties: str,
                     console: Console) -> None:
    from rsim.frontends.caffe import read_caffe, write_ristretto_prototxt
    from rsim.frontends.caffe.ristretto import RISTRETTO_HW, datapath_override

    if out is None:
        return
    if out.suffix.lower() == ".prototxt":
        write_ristretto_prototxt(read_caffe(model.path, model.weights), found.params, out)
    else:
        entries = [{"match": name, **datapath_override(p, ties)}
                   for name, p in found.params.items()]
        _write_qspec(out, entries, f"Ristretto's {found.mode} choice; simulate with "
                                   f"--hw {RISTRETTO_HW}")
    console.print(f"wrote {out}")


def _report_per_layer(found, reference, network, accelerator, console: Console) -> None:
    from rsim.search.per_layer import design_costs

    table = Table(title=f"per-layer search on {accelerator.name}: top-1 {100 * found.accuracy:.2f}"
                        f" % (float {100 * found.baseline:.2f} %)", title_justify="left")
    for column in ("layer", "weights bits", "output bits", "accumulator bits"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for name in found.weights:
        table.add_row(name, str(found.weights[name]), str(found.activations[name]),
                      str(found.accumulators.get(name, "-")))
    console.print(table)
    ours = design_costs(network, accelerator, found.entries())
    theirs_entries = [{"match": name, "weights": {"bits": p.bw_params, "fl": "dynamic"},
                       "activations": {"bits": p.bw_layer_out, "fl": "dynamic"}}
                      for name, p in reference.params.items()]
    theirs = design_costs(network, accelerator, theirs_entries)
    console.print(f"weights: {ours[0]:,} bits (Ristretto's choice, "
                  f"{reference.chosen['conv']}/{reference.chosen['fc']}/"
                  f"{reference.chosen['activations']} bits: {theirs[0]:,}); MAC energy per "
                  f"inference {ours[1] * 1e-6:.3f} µJ (Ristretto's choice "
                  f"{theirs[1] * 1e-6:.3f} µJ)")


def _write_per_layer(found, model: ModelOptions, network, accelerator, scored, out, console):
    if out is None:
        return
    if out.suffix.lower() == ".prototxt":
        from rsim.frontends.caffe import read_caffe, write_ristretto_prototxt
        from rsim.frontends.caffe.ristretto import ristretto_params
        from rsim.quant.qspec import QSpec
        from rsim.search.evaluate import _Batches
        from rsim.simulation import prepare

        run = prepare(network, accelerator, QSpec.model_validate({"layers": found.entries()}),
                      _Batches(scored.batches), len(scored.batches[0][0]))
        params = {q.layer.name: ristretto_params(q.layer.name, q.in_fmts[0], q.weight_fmt,
                                                 q.out_fmt, q.rounding)
                  for q in run.quants if q.layer.name in found.weights}
        write_ristretto_prototxt(read_caffe(model.path, model.weights), params, out)
        console.print(f"wrote {out} (formats only: Ristretto has no accumulator widths)")
        return
    _write_qspec(out, found.entries(), f"per-layer search on {accelerator.name}; simulate "
                                       f"with --hw {accelerator.name}")
    console.print(f"wrote {out}")


def _write_qspec(path: Path, entries: list[dict], comment: str) -> None:
    from rsim.files import write_atomically

    text = f"# {comment}\n" + yaml.safe_dump({"layers": entries}, sort_keys=False)
    write_atomically(path, text.encode())
