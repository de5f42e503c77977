"""Small pure helpers on (H, W) bool masks: boxes, crops, resizing, pairwise overlaps."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(H, W) bool -> (x0, y0, x1, y1) pixel box, x1/y1 exclusive; (0, 0, 0, 0) if empty."""
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(ys):
        return 0, 0, 0, 0
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def crop_region(rgb: np.ndarray, mask: np.ndarray, context: float = 0.2, dim_background: float = 0.0) -> np.ndarray:
    """The box of a mask grown by ``context`` of its size on each side.

    Args:
        rgb (np.ndarray): (H, W, 3) uint8 image.
        mask (np.ndarray): (H, W) bool mask of the same size.
        context (float): margin around the box, as a fraction of the box's width/height.
        dim_background (float): 0 keeps the surroundings as they are; 1 greys them out fully.

    Returns:
        np.ndarray: (h, w, 3) uint8 crop (at least 1x1).
    """
    x0, y0, x1, y1 = mask_bbox(mask)
    h, w = mask.shape
    mx, my = int((x1 - x0) * context), int((y1 - y0) * context)
    x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(w, max(x1 + mx, x0 + 1)), min(h, max(y1 + my, y0 + 1))
    crop = rgb[y0:y1, x0:x1]
    if dim_background > 0:
        m = mask[y0:y1, x0:x1, None]
        grey = np.full_like(crop, 124)
        crop = np.where(m, crop, (crop * (1 - dim_background) + grey * dim_background).astype(np.uint8))
    return np.ascontiguousarray(crop)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) bool mask to (height, width)."""
    if mask.shape == (height, width):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST)) > 127


def resize_image(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image with its longest side at most ``max_side`` (area filter)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


def _encode(masks: list[np.ndarray]) -> list[dict]:
    stack = np.asfortranarray(np.stack(masks, -1).astype(np.uint8))
    return mask_utils.encode(stack)


def pairwise_iou(masks: list[np.ndarray]) -> np.ndarray:
    """(N,) masks -> (N, N) IoU matrix (pycocotools on RLE)."""
    if not masks:
        return np.zeros((0, 0))
    rles = _encode(masks)
    return np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64).reshape(len(masks), len(masks))


def pairwise_containment(masks: list[np.ndarray]) -> np.ndarray:
    """(N,) masks -> (N, N) matrix C with C[i, j] = |m_i & m_j| / |m_i| (how much of i lies in j)."""
    if not masks:
        return np.zeros((0, 0))
    rles = _encode(masks)
    # pycocotools: against an "iscrowd" mask the overlap is divided by the first mask's area
    return np.asarray(mask_utils.iou(rles, rles, [1] * len(rles)), dtype=np.float64).reshape(len(masks), len(masks))
