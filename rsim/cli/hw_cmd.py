"""`rsim hw`: the accelerator descriptions (schema, shipped configs, one config explained)."""

from __future__ import annotations

import click
import yaml

import hwconfigs
from rsim.schedule.plan import reduction_plan


@click.group("hw")
def hw_command() -> None:
    """Accelerator descriptions (hwconfigs): schema, shipped configs, details."""


@hw_command.command("schema")
def schema_command() -> None:
    """Print the JSON schema of an accelerator config."""
    click.echo(hwconfigs.json_schema())


def _summary(accel: hwconfigs.Accelerator) -> str:
    array, datapath = accel.array, accel.datapath
    acc = datapath.accumulator
    acc_text = f"acc {acc.bits}b {acc.overflow.value}" if acc.bits else f"acc {acc.format}"
    return (f"{array.rows}x{array.cols} {array.dataflow.upper()}, "
            f"w {_operand(datapath.weights)} / a {_operand(datapath.activations)}, {acc_text}")


def _operand(fmt: object) -> str:
    if isinstance(fmt, hwconfigs.DynamicFixed):
        return f"dfp{fmt.bits}"
    return str(fmt)


@hw_command.command("list")
def list_command() -> None:
    """List the shipped configs (the default is marked with *)."""
    names = hwconfigs.list_configs()
    width = max(len(name) for name in names)
    for name in names:
        accel = hwconfigs.load(name)
        mark = "*" if name == hwconfigs.DEFAULT else " "
        click.echo(f"{mark} {name:<{width}}  {_summary(accel)}")


@hw_command.command("show")
@click.argument("config")
def show_command(config: str) -> None:
    """Show one config (shipped NAME or YAML PATH), validated, with its defaults filled in."""
    accel = hwconfigs.load(config)
    plan = reduction_plan(accel.array, accel.datapath)
    click.echo(f"# {accel.name}: {_summary(accel)}")
    click.echo(f"# source: {hwconfigs.config_path(config)}")
    if plan.k_chunk is None:
        click.echo("# reduction: each PE accumulates the whole K (no partial-sum step)")
    else:
        click.echo(f"# reduction: K in chunks of {plan.k_chunk} rows, chunk sums added into the "
                   "partial-sum buffer in fold order")
    data = accel.model_dump(mode="json", exclude_none=True)
    click.echo(yaml.safe_dump(data, sort_keys=False, width=100), nl=False)
