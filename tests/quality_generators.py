"""A mask generator for engine-quality tests, used as a plug-in (``quality_generators:ColourRegions``):
one proposal per distinct non-black colour of the image, so that on the images of
``quality_fixtures`` it returns the ground truth itself, or the ground truth shifted right by
``shift`` pixels. An image of one exact grey kills the process, as crash_generator's does."""

from __future__ import annotations

import os

import numpy as np
from crash_generator import POISON_GREY

from annotation_engine.mask_generators import Proposal


class ColourRegions:
    def __init__(self, shift: int = 0, **_superpixel_params):
        self.shift = int(shift)

    def identity(self) -> dict[str, str]:
        return {"generator": "colour-regions", "generator_version": f"shift{self.shift}"}

    def generate(self, rgb: np.ndarray) -> list[Proposal]:
        if (rgb == POISON_GREY).all():
            os._exit(3)  # dies like a segfault would
        colours = np.unique(rgb.reshape(-1, 3), axis=0)
        out = []
        for c in colours:
            if not c.any():
                continue  # the black background
            mask = np.roll((rgb == c).all(-1), self.shift, axis=1)
            out.append(Proposal(mask, {"predicted_iou": float(c[0]) / 255, "stability_score": float(c[1]) / 255}))
        return out
