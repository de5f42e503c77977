"""Typed records of the unified sample format and their validation.

One sample = one image and every (instruction, mask) target on it. On disk a sample is
``KEY.jpg`` (or ``.png``) plus ``KEY.json``::

    {"image": {"id", "width", "height", "sha256", "source"},
     "targets": [{"texts", "mask", "task", "granularity", "source", "scores", "provenance"}]}

``mask`` is COCO RLE ``{"size": [h, w], "counts": str}``, or null for a no-target
expression (gRefCOCO). See ../shared/DESIGN.md for the full description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common.errors import FormatError
from shards.keys import check_key
from shards.rle import RLEError, rle_area, rle_to_mask, validate_rle

SCHEMA_VERSION = 1

# Known task names; "auto" marks engine output. Extend here, never ad hoc.
TASKS = frozenset({"res", "gres", "semantic", "instance", "panoptic", "part", "sod", "cod", "open_vocab", "auto"})
GRANULARITIES = frozenset({"part", "instance", "group", "class", "scene"})
STORED_IMAGE_EXTS = frozenset({"jpg", "png"})


def check_expression(text: object) -> str:
    """The one rule for an expression, wherever it comes from (a dataset, the command line):
    a string with something other than whitespace in it.

    Raises:
        FormatError: an empty, whitespace-only or non-string expression.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormatError(f"empty or non-string expression: {text!r}")
    return text


@dataclass
class ImageInfo:
    """The image of a sample.

    Attributes:
        id (str): stable identifier within the source (e.g. COCO image id, file path).
        width (int): width in pixels of the image as a person sees it (EXIF applied).
        height (int): height in pixels, same convention.
        sha256 (str): hex sha256 of the original input file's bytes.
        source (str): dataset or engine the image came from.
    """

    id: str
    width: int
    height: int
    sha256: str
    source: str


@dataclass
class Target:
    """One (instruction, mask) target.

    Attributes:
        texts (list[str]): one or more instructions that all refer to this mask.
        mask (dict | None): COCO RLE of the mask, None for a no-target expression.
        task (str): one of TASKS.
        granularity (str): one of GRANULARITIES.
        source (str): dataset or engine that produced the target.
        scores (dict[str, float]): quality scores (predicted IoU, stability, CLIP, ...).
        provenance (dict[str, Any]): where it came from (annotation ids, engine version...).
    """

    texts: list[str]
    mask: dict[str, Any] | None
    task: str
    granularity: str
    source: str
    scores: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def mask_array(self) -> np.ndarray | None:
        """The decoded (H, W) bool mask, or None for a no-target expression."""
        return None if self.mask is None else rle_to_mask(self.mask)

    @property
    def area(self) -> int:
        """Foreground pixel count (0 for a no-target expression)."""
        return 0 if self.mask is None else rle_area(self.mask)


@dataclass
class Sample:
    """An image (encoded bytes) with its targets, keyed for a shard.

    Attributes:
        key (str): dot-free unique key (see shards.keys.make_key).
        image (ImageInfo): metadata of the image.
        image_bytes (bytes): encoded image (JPEG or PNG).
        image_ext (str): "jpg" or "png", the encoding of image_bytes.
        targets (list[Target]): at least one target.
    """

    key: str
    image: ImageInfo
    image_bytes: bytes
    image_ext: str
    targets: list[Target]

    def metadata(self) -> dict[str, Any]:
        """The JSON document stored as KEY.json (built field by field: asdict deep-copies)."""
        img = self.image
        return {
            "image": {
                "id": img.id,
                "width": img.width,
                "height": img.height,
                "sha256": img.sha256,
                "source": img.source,
            },
            "targets": [
                {
                    "texts": t.texts,
                    "mask": t.mask,
                    "task": t.task,
                    "granularity": t.granularity,
                    "source": t.source,
                    "scores": t.scores,
                    "provenance": t.provenance,
                }
                for t in self.targets
            ],
        }

    def metadata_json(self) -> bytes:
        """KEY.json's bytes: the metadata as UTF-8 JSON (non-ASCII text kept as is)."""
        return json.dumps(self.metadata(), ensure_ascii=False).encode("utf-8")

    def to_wds(self) -> dict[str, Any]:
        """The dict that webdataset.TarWriter writes: key, image bytes, json bytes."""
        return {"__key__": self.key, self.image_ext: self.image_bytes, "json": self.metadata_json()}


def validate_target(t: Target, height: int, width: int) -> int:
    """Checks one target against the format and its image size.

    Returns:
        int: the mask's foreground area (0 for a no-target expression).

    Raises:
        FormatError: naming the field that is wrong.
    """
    if not isinstance(t.texts, list) or not t.texts:
        raise FormatError("target has an empty text list")
    for text in t.texts:
        check_expression(text)
    if t.task not in TASKS:
        raise FormatError(f"unknown task {t.task!r}; known: {sorted(TASKS)}")
    if t.granularity not in GRANULARITIES:
        raise FormatError(f"unknown granularity {t.granularity!r}; known: {sorted(GRANULARITIES)}")
    if not t.source:
        raise FormatError("target has no source")
    area = 0
    if t.mask is not None:
        try:
            area = validate_rle(t.mask)
        except RLEError as e:
            raise FormatError(f"invalid RLE: {e}") from e
        if list(t.mask["size"]) != [height, width]:
            raise FormatError(f"mask size {list(t.mask['size'])} differs from image size [{height}, {width}]")
    for name, value in t.scores.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise FormatError(f"score {name!r} is not a number: {value!r}")
    return area


def validate_sample(s: Sample) -> list[int]:
    """Checks a whole sample: key, image metadata and every target; returns the targets' areas."""
    check_key(s.key)
    if s.image_ext not in STORED_IMAGE_EXTS:
        raise FormatError(f"image extension must be one of {sorted(STORED_IMAGE_EXTS)}, got {s.image_ext!r}")
    if not isinstance(s.image_bytes, bytes):
        raise FormatError(f"image bytes must be bytes (encoded {s.image_ext}), got {type(s.image_bytes).__name__}")
    if not s.image_bytes:
        raise FormatError("image bytes are empty")
    if s.image.width <= 0 or s.image.height <= 0:
        raise FormatError(f"image size must be positive, got {s.image.width}x{s.image.height}")
    if len(s.image.sha256) != 64:
        raise FormatError("image sha256 must be 64 hex characters")
    if not s.targets:
        raise FormatError("sample has no targets")
    areas = []
    for i, t in enumerate(s.targets):
        try:
            areas.append(validate_target(t, s.image.height, s.image.width))
        except FormatError as e:
            raise FormatError(f"target {i}: {e}") from e
    return areas


def target_from_dict(d: dict[str, Any]) -> Target:
    """Builds a Target from its JSON dict; an unknown key fails loudly."""
    try:
        return Target(**d)
    except TypeError as e:
        raise FormatError(f"bad target record: {e}") from e


def parse_metadata(doc: dict[str, Any]) -> tuple[ImageInfo, list[Target]]:
    """Parses a KEY.json document into its image info and targets."""
    try:
        image = ImageInfo(**doc["image"])
    except (KeyError, TypeError) as e:
        raise FormatError(f"bad image record: {e}") from e
    return image, [target_from_dict(t) for t in doc.get("targets", [])]
