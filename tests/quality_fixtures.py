"""A labeled split of coloured rectangles on black, whose proposals' IoUs are known by hand.

Every rectangle is 40 px wide, so a copy shifted s px sideways has IoU (40 - s) / (40 + s)
whatever its height: s = 5 gives 35 / 45 = 0.778, matched at the IoU thresholds 0.50..0.75
(6 of COCO's 10), so AR = 0.6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import encode
from crash_generator import POISON_GREY

from shards.format import ImageInfo, Sample, Target
from shards.images import prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle
from shards.writer import ShardWriter

H, W = 96, 128
WIDTH = 40
# per image: (colour, y0, y1, x0, task, granularity, text); heights 40 (medium: 1600 px) or 20 (small: 800 px)
SPEC = [
    [
        ((250, 20, 20), 8, 48, 8, "res", "instance", "the red square"),
        ((20, 200, 40), 50, 70, 70, "part", "part", "the green bar"),
    ],
    [((30, 60, 240), 20, 60, 30, "semantic", "class", "all blue")],
    [((240, 240, 30), 30, 70, 60, "res", "instance", "the yellow square")],
]
ENGINE = {
    "base": "weightfree",
    "name": "colour-regions",
    "generator": {"name": "quality_generators:ColourRegions", "params": {"shift": 0}},
    "resources": {"num_cpus": 1, "batch_size": 1},
}


def engine(shift: int = 0) -> dict:
    return {**ENGINE, "generator": {**ENGINE["generator"], "params": {"shift": shift}}}


def write_split(split_dir: Path, spec=SPEC, poison: bool = False, source: str = "rects") -> None:
    """The split (one image per spec entry; with ``poison``, a grey image that kills the engine,
    with one ground-truth rectangle). An empty entry is an image with one no-target expression."""
    with ShardWriter(split_dir, max_count=2) as w:
        for i, rects in enumerate(spec + ([None] if poison else [])):
            img = np.zeros((H, W, 3), np.uint8)
            targets = []
            for colour, y0, y1, x0, task, gran, text in (
                [((0, 0, 0), 10, 30, 10, "res", "instance", "x")] if rects is None else rects
            ):
                m = np.zeros((H, W), bool)
                m[y0:y1, x0 : x0 + WIDTH] = True
                img[m] = colour
                targets.append(Target([text], mask_to_rle(m), task, gran, source))
            if rects is None:
                img[:] = POISON_GREY
            if rects == []:
                targets.append(Target(["the purple elephants"], None, "gres", "group", source))
            st = prepare_image(encode(img, "PNG"))
            key = make_key(source, f"img{i}.png")
            w.write(Sample(key, ImageInfo(str(i), W, H, st.sha256, source), st.data, st.ext, targets))
