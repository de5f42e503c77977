"""Mask generators for tests, used as plug-ins: superpixels, except that an image of one exact grey
makes the process die, as a poison image would (``crash_generator:CrashOnGrey``), or that every
image takes a set time (``crash_generator:Slow``), so a run lasts long enough to be interfered with."""

from __future__ import annotations

import os
import time

import numpy as np

from annotation_engine.mask_generators.superpixel import SuperpixelGenerator

POISON_GREY = 77


def poison_image(side: int = 64) -> np.ndarray:
    return np.full((side, side, 3), POISON_GREY, np.uint8)


class CrashOnGrey(SuperpixelGenerator):
    def identity(self) -> dict[str, str]:
        return {**super().identity(), "generator": "crash-on-grey"}

    def generate(self, rgb: np.ndarray):
        if (rgb == POISON_GREY).all():
            os._exit(3)  # dies like a segfault would: no exception to catch
        return super().generate(rgb)


class Slow(SuperpixelGenerator):
    def __init__(self, seconds: float = 0.5, **params):
        super().__init__(**params)
        self.seconds = float(seconds)

    def generate(self, rgb: np.ndarray):
        time.sleep(self.seconds)
        return super().generate(rgb)
