"""Registries of mask generators and captioners (timm's @register_model habit).

A mask generator is a class built as ``cls(**params)`` with ``generate(rgb) -> list[Proposal]``;
a captioner is built the same way with ``describe(rgb, masks) -> list[str | None]``. Both
expose ``identity() -> dict`` (name, code/library version, model identity) that goes into
every target's provenance and into the engine version. Tiny test models live in the same
registries, so tests run the production path.
"""

from __future__ import annotations

from common.registry import Registry

MASK_GENERATORS = Registry(
    "mask generator",
    [
        "annotation_engine.mask_generators.superpixel",
        "annotation_engine.mask_generators.sam",
        "annotation_engine.mask_generators.sam2_generator",
        "annotation_engine.mask_generators.unilseg_source",
    ],
)
CAPTIONERS = Registry(
    "captioner",
    [
        "annotation_engine.captioners.attributes",
        "annotation_engine.captioners.hf",
    ],
)
