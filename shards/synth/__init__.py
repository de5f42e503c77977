"""Synthetic referring segmentation data: coloured shapes and objects with parts.

``generate_shapes(out, images, seed, size)`` writes a small, learnable referring set in
refer's layout (``refs(unc).p``, ``instances.json``, ``images/``), which the ``refcoco``
converter turns into shards like any RefCOCO download. It is the ground truth on which a
tiny CPU model learns referring segmentation: small images, a small fixed vocabulary
(colours, shapes, sizes, positions, relations, parts, groups), and only unambiguous texts.
"""

from shards.synth.generate import CATEGORIES, SynthConfig, ensure_shapes, generate_shapes, is_complete, make_scene

__all__ = ["CATEGORIES", "SynthConfig", "ensure_shapes", "generate_shapes", "is_complete", "make_scene"]
