"""Dataset converters: each public layout -> our shards, through one driver.

A converter is a function ``(src: Path, **options) -> Iterator[Item | Rejected]``
registered under a format name. Formats whose sources hold several splits register, beside
the converter, ``splits=fn``: ``fn(src, **options) -> list[str]`` names the splits the source
has (``unilseg convert`` converts them all unless told which); formats without splits of
their own (salient object folders) write one split, ``train`` unless named. It yields an
``Item`` per image: the key first and a ``build`` callable that reads the files and returns
the Sample, so the driver can skip keys already written without reading anything, and can
quarantine whatever ``build`` raises (with the error message as the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from common.errors import UniLSegError
from common.registry import Registry
from shards.format import ImageInfo, Sample, Target
from shards.images import StoredImage
from shards.keys import make_key


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
# the split a format without splits of its own is written to, unless one is named
DEFAULT_SPLIT = "train"
_SPLIT_RANK = {"train": 0, "training": 0, "val": 1, "validation": 1, "test": 2, "testing": 2}


def order_splits(names) -> list[str]:
    """Distinct split names in reading order: train, val, test, testA, testB, ..., then the rest."""

    def rank(name: str) -> tuple[int, str]:
        return (_SPLIT_RANK.get(name, 2 if name.startswith("test") else 3), name)

    return sorted(set(names), key=rank)


# Modules that register converters; imported on first lookup so the CLI starts fast.
CONVERTERS = Registry(
    "format",
    [
        "shards.converters.folder_sets",
        "shards.converters.refer",
        "shards.converters.grefcoco",
        "shards.converters.coco",
        "shards.converters.ade20k",
        "shards.converters.parts",
        "shards.converters.voc",
    ],
)
register_converter = CONVERTERS.register
get_converter = CONVERTERS.get
converter_names = CONVERTERS.names


def image_sample(source: str, name: str, image_id: str, stored: StoredImage, targets: list[Target]) -> Sample:
    """The Sample of one converted image.

    Args:
        source (str): the dataset's name (the key's namespace, ``ImageInfo.source``).
        name (str): the image's name in the source (file name or relative path): with
            ``source``, it makes the key (``shards.keys.make_key``).
        image_id (str): the source's own id of the image (``ImageInfo.id``).
        stored (StoredImage): the image as ``shards.images.prepare_image`` returned it.
        targets (list[Target]): at least one.
    """
    info = ImageInfo(image_id, stored.width, stored.height, stored.sha256, source)
    return Sample(make_key(source, name), info, stored.data, stored.ext, targets)
