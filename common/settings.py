"""Typed settings: one dataclass per component is the single definition of its settings.

A field is declared once, with its default, a one-line help text and its bounds::

    steps: int = setting(1000, "optimizer steps in total", min=1)

and everything else is derived from it: the command line's options (``cli/options.py``), the
Prefect flows' validation (``flows/config.py``), the YAML examples' checks (tests). Bounds
and choices are checked by ``check_settings`` in the dataclass's ``__post_init__``, so a bad
value fails the same way wherever it comes from. ``from_dict`` builds a dataclass from a
plain dict and names any unknown key (nanoGPT's ``GPTConfig(**d)`` habit, with a message).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from common.errors import UniLSegError

T = TypeVar("T")


class SettingsError(UniLSegError):
    """A setting that is unknown, of the wrong type or out of range (the message names it)."""


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    cli: str | bool = True,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its help text and bounds.

    Args:
        default: the default value (use ``factory`` for mutable defaults).
        help (str): one line for --help and docs.
        min (float | None): smallest allowed value (inclusive).
        max (float | None): largest allowed value (inclusive).
        choices (tuple | None): the allowed values.
        cli (str | bool): False keeps it off the command line; a string is the option name.
        factory: default factory for mutable defaults.
    """
    meta = {"help": help, "min": min, "max": max, "choices": choices, "cli": cli}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (built fresh from its factory), or MISSING."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation (works with ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)


def check_settings(obj: Any) -> None:
    """Checks every field's bounds and choices (declared with ``setting``).

    Raises:
        SettingsError: naming the class, the field, the value and the rule.
    """
    name = type(obj).__name__
    for f in dataclasses.fields(obj):
        v, m = getattr(obj, f.name), f.metadata
        if not m or v is None:
            continue
        if m.get("choices") is not None and v not in m["choices"]:
            raise SettingsError(f"{name}.{f.name} must be one of {list(m['choices'])}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if m.get("min") is not None and v < m["min"]:
                raise SettingsError(f"{name}.{f.name} must be >= {m['min']}, got {v!r}")
            if m.get("max") is not None and v > m["max"]:
                raise SettingsError(f"{name}.{f.name} must be <= {m['max']}, got {v!r}")


def from_dict(cls: type[T], d: dict[str, Any], where: str | None = None) -> T:
    """``cls(**d)``, with an unknown key reported by name (and the known ones).

    Args:
        cls: a dataclass.
        d (dict): field values; missing ones keep their defaults.
        where (str | None): what the dict came from (a file, a section), for the message.
    """
    if not isinstance(d, dict):
        raise SettingsError(f"{where or cls.__name__}: expected a mapping of settings, got {type(d).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - known)
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)} in {where or cls.__name__}; known: {', '.join(sorted(known))}"
        )
    return cls(**d)
