"""A converted synthetic split with engine-like scores, for the review tests.

    split = scored_split(tmp_path / "data", images=12)   # DATA/synth/train, every target scored

The synthetic referring set is generated (shards.synth), converted as refcoco, and written again
with a deterministic ``predicted_iou`` and an ``engine_version`` on every target, as the engine
would give them, so that selection by score has something to order.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from shards import storage
from shards.converters.convert import convert_splits
from shards.format import Sample
from shards.reader import ShardReader
from shards.synth import generate_shapes
from shards.writer import ShardWriter

ENGINE_VERSION = "test-engine-1"


def scored_split(data_root, images: int = 12, size: int = 64, src=None):
    """DATA_ROOT/synth/train: a converted synthetic split whose targets carry scores.

    Args:
        data_root: where the dataset goes (local path or URL).
        images: synthetic images to generate.
        size: their side in pixels.
        src: a local folder for the generated source and the plain conversion (default: beside
            a local data root; required for a URL).
    """
    local = storage.local_path(data_root)
    work = src or os.path.join(local, "_work")
    generate_shapes(os.path.join(work, "src"), images=images, seed=3, size=size)
    convert_splits("refcoco", os.path.join(work, "src"), os.path.join(work, "plain"), ["train"], progress=False)
    out = storage.join(data_root, "synth", "train")
    rng = np.random.default_rng(0)
    with ShardWriter(out, max_count=5) as w:
        for s in ShardReader(os.path.join(work, "plain", "train")).samples(decode_images=False):
            targets = [
                replace(
                    t,
                    scores={"predicted_iou": round(float(rng.random()), 4)},
                    provenance={**t.provenance, "engine_version": ENGINE_VERSION},
                )
                for t in s.targets
            ]
            ext = "jpg" if s.image_bytes[:2] == b"\xff\xd8" else "png"
            w.write(Sample(s.key, s.image, s.image_bytes, ext, targets))
    return out
