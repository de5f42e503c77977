"""Contact sheet of the k best and k worst predictions of an evaluation.

First row: the k best (highest IoU first); second row: the k worst (lowest first). Each
cell is the image with the ground truth in green and the prediction in red (overlap looks
brownish-orange; a no-target ground truth dims the image, as `unilseg shards preview`
does), and under it the rank, IoU, task and text. Drawing reuses shards.preview.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shards.images import decode_image
from shards.preview import CELL, PALETTE, TEXT_LINES, overlay, render_cells
from shards.reader import ShardReader

GT_COLOR = PALETTE[1]  # green
PRED_COLOR = PALETTE[0]  # red
LEGEND = "green = ground truth, red = prediction"
_LINE_H, _PAD = 16, 8  # as shards.preview.render_cells lays captions out


def sheet_size(k: int, n_best: int, n_worst: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet with these row contents."""
    rows = int(n_best > 0) + int(n_worst > 0)
    return k * CELL, rows * (CELL + TEXT_LINES * _LINE_H + _PAD)


def best_and_worst(ious: Sequence[float], k: int) -> tuple[list[int], list[int]]:
    """Indices of the k best (IoU descending) and k worst (ascending) samples, disjoint.

    Ties keep input order. With fewer than 2k samples each row gets about half (the best
    row the odd one out).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n_worst = min(k, len(ious) // 2)
    n_best = min(k, len(ious) - n_worst)
    worst = sorted(range(len(ious)), key=lambda i: (ious[i], i))[:n_worst]
    taken = set(worst)
    best = [i for i in sorted(range(len(ious)), key=lambda i: (-ious[i], i)) if i not in taken][:n_best]
    return best, worst


def draw_prediction(rgb: np.ndarray, pred: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 image with gt (green) then pred (red) blended in and outlined, and the
    gt's outline drawn last.

    Args:
        rgb: (H, W, 3) uint8 image.
        pred: (H, W) bool predicted mask.
        gt: (H, W) bool ground truth, or None for a no-target expression.
    """
    if pred.shape != rgb.shape[:2] or (gt is not None and gt.shape != rgb.shape[:2]):
        raise ValueError(
            f"masks {pred.shape} / {None if gt is None else gt.shape} do not match the image {rgb.shape[:2]}"
        )
    out = overlay(overlay(rgb, gt, GT_COLOR), pred, PRED_COLOR)
    # the ground truth's outline again on top (alpha 0: edge only), so a prediction covering it hides nothing
    return out if gt is None else overlay(out, gt, GT_COLOR, alpha=0.0)


def enlarge(pic: np.ndarray) -> np.ndarray:
    """Small images scaled up by a whole factor (nearest), so their masks stay visible in a cell."""
    factor = (CELL - 8) // max(pic.shape[:2])
    return pic.repeat(factor, 0).repeat(factor, 1) if factor > 1 else pic


def _load_images(split_dir: str | os.PathLike, keys: set[str]) -> dict[str, np.ndarray]:
    """Decodes only the images of `keys`, in one pass over the split."""
    found: dict[str, np.ndarray] = {}
    for sample in ShardReader(split_dir).samples(decode_images=False):
        if sample.key in keys:
            found[sample.key] = decode_image(sample.image_bytes)
            if len(found) == len(keys):
                break
    return found


def write_best_worst(
    split_dir: str | os.PathLike,
    items: Sequence[Any],
    out: str | os.PathLike,
    k: int,
    pred_of: Callable[[Any], np.ndarray],
    gt_of: Callable[[Any], np.ndarray | None],
) -> dict[str, Any] | None:
    """Writes the sheet of the k best and k worst items as a PNG.

    Args:
        split_dir: the split the items come from (images are read from it; a local path or URL).
        items: scored items with `key`, `id`, `iou`, `task` and `text` attributes.
        out: PNG path.
        k: cells per row.
        pred_of / gt_of: item -> (H, W) bool prediction / ground truth (None = no target).

    Returns:
        dict | None: path, size and the ids drawn, or None when there is nothing to draw.
    """
    if not items:
        return None
    best, worst = best_and_worst([it.iou for it in items], k)
    images = _load_images(split_dir, {items[i].key for i in best + worst})

    def cell(i: int, label: str) -> tuple[np.ndarray, str]:
        it = items[i]
        pic = enlarge(draw_prediction(images[it.key], pred_of(it), gt_of(it)))
        return pic, f"{label}: IoU {it.iou:.3f} [{it.task}] {it.text}"

    blank = (np.full((8, 8, 3), 255, np.uint8), "")
    cells = [cell(i, f"best {r + 1}") for r, i in enumerate(best)]
    if best:
        cells += [blank] * (k - len(best))  # keeps the worst row on its own line
    cells += [cell(i, f"worst {r + 1}") for r, i in enumerate(worst)]
    sheet = render_cells(cells, columns=k)
    sheet.save(out)
    return {
        "path": str(out),
        "width": sheet.width,
        "height": sheet.height,
        "legend": LEGEND,
        "best": [items[i].id for i in best],
        "worst": [items[i].id for i in worst],
    }
