"""Command-line options derived from a settings dataclass (common.settings).

``@settings_options(TrainConfig)`` adds one option per field that has ``cli`` metadata: its
name (``--batch-size``, or the field's ``cli`` string), type, default, bounds, choices and
help come from the field, so `--help` and the library can never disagree. Bool fields
become ``--x/--no-x`` flags. The command receives the values under the field names.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from common.settings import default_of, field_types


def _base_type(tp: Any) -> Any:
    """`int | None` -> int; a union with str (`str | dict`) -> str: the command line gives text."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str if str in args else tp
    return tp


def _click_type(tp: Any, meta: dict[str, Any]) -> Any:
    if meta.get("choices"):
        return click.Choice([str(c) for c in meta["choices"]])
    lo, hi = meta.get("min"), meta.get("max")
    if tp is int:
        return click.IntRange(lo, hi) if lo is not None or hi is not None else int
    if tp is float:
        return click.FloatRange(lo, hi) if lo is not None or hi is not None else float
    return str


def option_name(f: dataclasses.Field) -> str:
    """The option a field becomes: its ``cli`` string, else --field-name."""
    cli = f.metadata.get("cli", True)
    return cli if isinstance(cli, str) else "--" + f.name.replace("_", "-")


def cli_fields(cls: type, exclude: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of `cls` that appear on the command line."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True) and f.name not in exclude]


def settings_options(cls: type, exclude: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator adding one click option per command-line field of the dataclass `cls`."""
    types_ = field_types(cls)

    def deco(fn: Callable) -> Callable:
        for f in reversed(cli_fields(cls, exclude)):
            tp, default, meta = _base_type(types_[f.name]), default_of(f), dict(f.metadata)
            name = option_name(f)
            if tp is bool:
                flag = f"{name}/--no-{name[2:]}"
                fn = click.option(flag, f.name, default=default, show_default=True, help=meta.get("help"))(fn)
            else:
                fn = click.option(
                    name,
                    f.name,
                    type=_click_type(tp, meta),
                    default=None if default is dataclasses.MISSING else default,
                    show_default=default is not None,
                    help=meta.get("help"),
                )(fn)
        return fn

    return deco


def pick(values: dict[str, Any], cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The command's values that belong to `cls`'s command-line fields."""
    names = {f.name for f in cli_fields(cls, exclude)}
    return {k: v for k, v in values.items() if k in names}


def set_verbose(ctx: click.Context | None = None, param: click.Parameter | None = None, value: bool = True) -> None:
    """The --verbose flag: debug logging with timestamps, and Ray's own output forwarded to the
    console (UNILSEG_VERBOSE=1, read by common.ray_runtime and inherited by subprocesses)."""
    if not value:
        return
    os.environ["UNILSEG_VERBOSE"] = "1"
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


verbose_option = click.option(
    "--verbose",
    is_flag=True,
    callback=set_verbose,
    expose_value=False,
    help="Debug logging, and what Ray's processes print.",
)
