"""The `rsim` command line: a thin layer over the public API.

Each subcommand lives in its own module of this package and is added to the group below. A
user-caused error (RsimError) or Ctrl-C becomes one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import sys

import click

from formats.errors import RsimError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RsimError as error:
            click.echo(f"rsim: error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("rsim: interrupted", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rsim")
def cli() -> None:
    """rsim: bit-accurate simulation of neural-network accelerators."""


def _add_commands() -> None:
    from rsim.cli import (format_cmd, hw_cmd, info_cmd, quantize_cmd, schedule_cmd, score_cmd,
                          simulate_cmd, trace_cmd, vectors_cmd)

    for command in (simulate_cmd.simulate_command, info_cmd.info_command,
                    schedule_cmd.schedule_command, hw_cmd.hw_command,
                    format_cmd.format_command, trace_cmd.trace_group,
                    vectors_cmd.vectors_command, score_cmd.score_command,
                    quantize_cmd.quantize_command):
        cli.add_command(command)


_add_commands()


def main() -> None:
    cli()
