"""Dataset converters: each public layout -> our shards, through one driver.

A converter is a function ``(src: Path, **options) -> Iterator[Item | Rejected]``
registered under a format name. It yields an ``Item`` per image: the key first and a
``build`` callable that reads the files and returns the Sample, so the driver can skip
keys already written without reading anything, and can quarantine whatever ``build``
raises (with the error message as the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from shards.errors import UniLSegError
from shards.format import Sample
from shards.registry import Registry


class ConvertError(UniLSegError):
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
# Modules that register converters; imported on first lookup so the CLI starts fast.
CONVERTERS = Registry("format", ["shards.converters.folder_sets", "shards.converters.refer",
                                 "shards.converters.grefcoco", "shards.converters.coco",
                                 "shards.converters.ade20k", "shards.converters.parts"])
register_converter = CONVERTERS.register
get_converter = CONVERTERS.get
converter_names = CONVERTERS.names
