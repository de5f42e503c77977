"""Dataset converters: each public layout -> our shards, through one driver.

A converter is a function ``(src: Path, **options) -> Iterator[Item | Rejected]``
registered under a format name. It yields an ``Item`` per image: the key first and a
``build`` callable that reads the files and returns the Sample, so the driver can skip
keys already written without reading anything, and can quarantine whatever ``build``
raises (with the error message as the reason).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterator

from shards.format import Sample


class ConvertError(ValueError):
    """A source record cannot be converted; the message is the quarantine reason."""


@dataclass
class Item:
    """One source image to convert.

    Attributes:
        key (str): the sample key (shards.keys.make_key).
        name (str): the input's name for quarantine records (usually its path).
        build (Callable[[], Sample]): reads and converts; raises on bad input.
    """

    key: str
    name: str
    build: Callable[[], Sample]


@dataclass
class Rejected:
    """A source record rejected while listing (e.g. a mask with no image)."""

    name: str
    reason: str


Converter = Callable[..., Iterator["Item | Rejected"]]
CONVERTERS: dict[str, Converter] = {}
# Modules that register converters; imported on first lookup so the CLI starts fast.
_MODULES = ["shards.converters.folder_sets", "shards.converters.refer", "shards.converters.grefcoco",
            "shards.converters.coco", "shards.converters.ade20k", "shards.converters.parts"]


def register_converter(name: str) -> Callable[[Converter], Converter]:
    """Decorator registering a converter under a format name; a duplicate name fails."""

    def deco(fn: Converter) -> Converter:
        if name in CONVERTERS:
            raise ValueError(f"converter {name!r} is already registered")
        CONVERTERS[name] = fn
        return fn

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def get_converter(name: str) -> Converter:
    """The converter registered under ``name``; a KeyError lists the known formats."""
    _load_all()
    if name not in CONVERTERS:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[name]


def converter_names() -> list[str]:
    """Every registered format name."""
    _load_all()
    return sorted(CONVERTERS)
