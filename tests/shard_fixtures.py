"""Builders of small valid samples for shard tests."""

from __future__ import annotations

import numpy as np

from conftest import encode
from shards.format import ImageInfo, Sample, Target
from shards.images import prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle


def make_sample(i: int, h: int = 24, w: int = 32, source: str = "test") -> Sample:
    """Sample i: a deterministic image, one instance target and one no-target expression."""
    rng = np.random.default_rng(i)
    st = prepare_image(encode(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "PNG"))
    mask = np.zeros((h, w), bool)
    mask[i % h:, : (i % w) + 1] = True
    targets = [Target([f"thing {i}", f"object number {i}"], mask_to_rle(mask), "res", "instance", source,
                      scores={"iou": 0.5 + i % 5 / 10}, provenance={"i": i}),
               Target([f"nothing {i}"], None, "gres", "group", source)]
    return Sample(make_key(source, f"img.{i}.png"), ImageInfo(str(i), st.width, st.height, st.sha256, source),
                  st.data, st.ext, targets)
