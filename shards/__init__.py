"""The unified (image, instruction, mask) sample format: records, shards, manifest, converters."""

from shards.format import (
    GRANULARITIES,
    SCHEMA_VERSION,
    TASKS,
    FormatError,
    ImageInfo,
    Sample,
    Target,
    validate_sample,
    validate_target,
)
from shards.keys import make_key
from shards.rle import mask_to_rle, rle_to_mask

__all__ = [
    "GRANULARITIES",
    "SCHEMA_VERSION",
    "TASKS",
    "FormatError",
    "ImageInfo",
    "Sample",
    "Target",
    "validate_sample",
    "validate_target",
    "make_key",
    "mask_to_rle",
    "rle_to_mask",
]
