"""A tiny shard split with res, gres (one no-target) and sod targets whose masks are boxes,
so metrics of saved predictions can be computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import encode
from PIL import Image

from shards.format import ImageInfo, Sample, Target
from shards.images import prepare_image
from shards.keys import make_key, target_id
from shards.rle import mask_to_rle
from shards.writer import ShardWriter

H, W = 24, 32


def box(y0: int, y1: int, x0: int, x1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# per sample: (task, granularity, texts, mask or None)
SPEC = [
    [
        ("res", "instance", ["the left box", "the box on the left"], box(2, 12, 2, 12)),
        ("gres", "group", ["the purple elephants"], None),
    ],
    [
        ("res", "instance", ["the right box"], box(4, 20, 16, 30)),
        ("sod", "instance", ["the most salient object"], box(6, 18, 8, 24)),
    ],
    [
        ("gres", "group", ["both boxes"], box(2, 12, 2, 12) | box(14, 22, 16, 30)),
        ("sod", "instance", ["the most salient object"], box(0, 10, 0, 16)),
    ],
]


def write_split(split_dir: Path, source: str = "evaltest", spec=SPEC) -> dict[str, np.ndarray | None]:
    """Writes the split; returns target id -> ground-truth mask (None = no target)."""
    gts: dict[str, np.ndarray | None] = {}
    with ShardWriter(split_dir, max_count=2) as w:
        for i, targets in enumerate(spec):
            rng = np.random.default_rng(i)
            st = prepare_image(encode(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), "PNG"))
            key = make_key(source, f"img{i}.png")
            tgts = [
                Target(list(texts), None if m is None else mask_to_rle(m), task, gran, source)
                for task, gran, texts, m in targets
            ]
            w.write(Sample(key, ImageInfo(str(i), W, H, st.sha256, source), st.data, st.ext, tgts))
            for ti, (_, _, _, m) in enumerate(targets):
                gts[target_id(key, ti)] = m
    return gts


def save_png(path: Path, mask: np.ndarray | None, shape=(H, W)) -> None:
    """A 0/255 8-bit PNG of a mask (all zero for None)."""
    arr = np.zeros(shape, np.uint8) if mask is None else mask.astype(np.uint8) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
