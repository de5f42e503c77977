"""The `unilseg` command line. Each command lives in its own module and imports heavy
libraries only when it runs, so `unilseg --help` stays fast."""

from __future__ import annotations

import importlib
import logging

import click

# Modules exporting a click command or group named `command`.
COMMAND_MODULES = [
    "unilseg.cli.annotate_cmd",
    "unilseg.cli.convert_cmd",
    "unilseg.cli.eval_cmd",
    "unilseg.cli.shards_cmd",
    "unilseg.cli.predict_cmd",
    "unilseg.cli.synth_cmd",
    "unilseg.cli.train_cmd",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """UniLSeg: language-guided segmentation data, models and evaluation."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _mod in COMMAND_MODULES:
    main.add_command(importlib.import_module(_mod).command)
