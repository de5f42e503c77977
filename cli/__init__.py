"""The `unilseg` command line: the top layer, beside the Prefect flows.

Each command lives in its own module. Their options come from the settings dataclasses of
the library (`cli/options.py`), so the command line cannot disagree with the library. A
command imports its library code when it runs, not at the top of its module: torch, Ray,
webdataset and open_clip take seconds each to import (BENCHMARKS.md, "Import times"), and
`unilseg --help` should answer at once.

Errors: a ``UniLSegError`` (bad input: a missing file, an unknown preset, a corrupt shard, a
setting out of range) is printed as one line and the exit code is 1; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import logging
import os

import click

from cli import (
    annotate_cmd,
    convert_cmd,
    eval_cmd,
    eval_engine_cmd,
    predict_cmd,
    review_cmd,
    shards_cmd,
    stack,
    synth_cmd,
    train_cmd,
)
from cli.options import set_verbose
from common import JOB_NAME_ENV
from common.errors import UniLSegError


class _Main(click.Group):
    """The command group; turns user errors raised anywhere below into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UniLSegError as e:
            raise click.ClickException(" ".join(str(e).split("\n"))) from e


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    callback=set_verbose,
    expose_value=False,
    is_eager=True,
    help="Debug logging, and what Ray's workers, actors and Train controller print (also after a "
    "command: `unilseg train --verbose ...`).",
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """UniLSeg: language-guided segmentation data, models and evaluation."""
    os.environ[JOB_NAME_ENV] = f"unilseg {ctx.invoked_subcommand}"  # the Ray dashboard's name for this command
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


for _mod in (
    annotate_cmd,
    convert_cmd,
    eval_cmd,
    eval_engine_cmd,
    predict_cmd,
    review_cmd,
    shards_cmd,
    stack,
    synth_cmd,
    train_cmd,
):
    main.add_command(_mod.command)
