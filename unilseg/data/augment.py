"""Training augmentation that keeps image and mask aligned.

Geometry (random scale, crop, horizontal flip) is folded into the one affine matrix that
letterboxes the crop to the model's square input, and that same matrix warps the image
(cubic) and the mask (nearest): they cannot drift apart. Rules that keep the text true:

- the crop always contains the whole target (its mask's bounding box), so an expression never
  refers to something cut away; zooming out (scale > 1) pads with the letterbox border;
- horizontal flip only when no text of the target mentions left or right (LEFT_RIGHT), or,
  with `swap_left_right`, for any text, the words left and right then swapped in the text
  the sample trains on (`swap_left_right_words`);
- colour jitter is brightness, contrast and saturation only, never hue: "the red circle"
  must stay red.

With augmentation off, `letterbox_sample` is exactly unilseg.transforms' letterboxing, the
same as inference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from unilseg.transforms import BORDER_RGB, letterbox_image, letterbox_mask, normalize

# "left", "right", "leftmost", "left-hand", "rightmost" ... but not "bright".
LEFT_RIGHT = re.compile(r"\b(left|right)", re.IGNORECASE)


@dataclass
class AugmentConfig:
    """Strength of the training augmentation.

    Attributes:
        min_scale (float): smallest crop side as a fraction of the image side (zoom in).
        max_scale (float): largest "crop" side fraction; > 1 zooms out (padding around).
        translate (float): random shift of the letterboxed crop, as a fraction of its free margin.
        flip_prob (float): probability of a horizontal flip (when the text allows one).
        brightness (float): brightness factor drawn from [1 - b, 1 + b].
        contrast (float): contrast factor drawn from [1 - c, 1 + c].
        saturation (float): saturation factor drawn from [1 - s, 1 + s].
        swap_left_right (bool): flip texts that say left or right too, swapping those words in the
            text (off: such targets are never flipped, so a flip never sees "left").
    """

    min_scale: float = 0.6
    max_scale: float = 1.1
    translate: float = 1.0
    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    swap_left_right: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")


def mentions_left_right(texts: Sequence[str]) -> bool:
    """True if any text says left or right (then a horizontal flip would make it false)."""
    return any(LEFT_RIGHT.search(t) for t in texts)


def swap_left_right_words(text: str) -> str:
    """The text of the mirrored image: left <-> right, keeping case and endings ("leftmost" ->
    "rightmost", "Left" -> "Right", "RIGHT" -> "LEFT"); "bright" and "upright" are left alone."""

    def swap(m: re.Match) -> str:
        word = m.group(1)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return LEFT_RIGHT.sub(swap, text)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) exclusive bounds of the foreground of an (H, W) mask, or None if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def sample_affine(h: int, w: int, size: int, rng: np.random.Generator, cfg: AugmentConfig,
                  keep: tuple[int, int, int, int] | None = None, flip: bool = False) -> np.ndarray:
    """A random crop of the (h, w) image, letterboxed to (size, size), optionally mirrored.

    Args:
        h, w (int): source image size.
        size (int): output side S.
        rng (np.random.Generator): randomness.
        cfg (AugmentConfig): scale and translation ranges.
        keep (tuple | None): (x0, y0, x1, y1) box the crop must contain (the target).
        flip (bool): mirror the output horizontally.

    Returns:
        np.ndarray: (2, 3) float64 matrix mapping source (x, y) to output pixels.
    """
    scale = rng.uniform(cfg.min_scale, cfg.max_scale)
    cw, ch = w * scale, h * scale
    if keep is not None:  # grow the crop (same aspect) until it holds the target
        grow = max(1.0, (keep[2] - keep[0]) / cw, (keep[3] - keep[1]) / ch)
        cw, ch = cw * grow, ch * grow
    lo_x, hi_x = (0.0, w - cw) if cw <= w else (w - cw, 0.0)
    lo_y, hi_y = (0.0, h - ch) if ch <= h else (h - ch, 0.0)
    if keep is not None:
        lo_x, hi_x = max(lo_x, keep[2] - cw), min(hi_x, keep[0])
        lo_y, hi_y = max(lo_y, keep[3] - ch), min(hi_y, keep[1])
    x0 = rng.uniform(lo_x, hi_x) if hi_x > lo_x else (lo_x + hi_x) / 2
    y0 = rng.uniform(lo_y, hi_y) if hi_y > lo_y else (lo_y + hi_y) / 2
    s = min(size / cw, size / ch)
    free_x, free_y = size - cw * s, size - ch * s  # letterbox margins, split at random
    bx = free_x * (0.5 + cfg.translate * (rng.uniform() - 0.5))
    by = free_y * (0.5 + cfg.translate * (rng.uniform() - 0.5))
    mat = np.array([[s, 0.0, bx - x0 * s], [0.0, s, by - y0 * s]], np.float64)
    if flip:  # x -> (S - 1) - x mirrors the output pixel grid exactly
        mat = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([mat, [0.0, 0.0, 1.0]])
    return mat


def color_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and saturation (no hue) on an (H, W, 3) uint8 image."""
    x = image.astype(np.float32)
    x *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + grey
    return np.clip(x, 0, 255).astype(np.uint8)


def letterbox_sample(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """No augmentation: (H, W, 3) uint8 + (H, W) mask -> (3, S, S) float32, (S, S) uint8, as inference sees it."""
    x, _ = letterbox_image(image, size)
    return x, letterbox_mask(mask, size)


def augment_sample(image: np.ndarray, mask: np.ndarray, texts: Sequence[str], size: int,
                   rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, bool]:
    """Random crop/scale/flip (one affine for both) and colour jitter (image only).

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        mask (np.ndarray): (H, W) bool/uint8 target mask (all zero for a no-target text).
        texts (Sequence[str]): every text of the target (the flip rule reads them all).
        size (int): output side S.
        rng (np.random.Generator): randomness.
        cfg (AugmentConfig): strengths.

    Returns:
        tuple: (3, S, S) float32 CLIP-normalised image, (S, S) uint8 mask in {0, 1}, and
        whether the sample was flipped (then, with cfg.swap_left_right, the caller trains on
        `swap_left_right_words(text)`).
    """
    h, w = mask.shape
    flip = rng.uniform() < cfg.flip_prob and (cfg.swap_left_right or not mentions_left_right(texts))
    mat = sample_affine(h, w, size, rng, cfg, keep=mask_bbox(mask), flip=flip)
    warped = cv2.warpAffine(color_jitter(image, rng, cfg), mat, (size, size), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB)
    m = cv2.warpAffine(np.ascontiguousarray(mask, np.uint8), mat, (size, size), flags=cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return normalize(warped), m, flip
