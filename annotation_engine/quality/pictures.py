"""The report's pictures, drawn with PIL alone (as unilseg/train_progress.py draws loss.png).

recall.png       recall against the IoU threshold (0.50..0.95, top 100 proposals per image):
                 one line for all ground-truth masks, one per granularity group present.
                 The area under the "all" line, over the thresholds, is AR@100.
scores.png       one scatter per engine score: the score (x, its own range) against the
                 proposal's best IoU with the ground truth (y, 0..1). A good judge's cloud
                 rises to the right; a flat cloud means the score says nothing about IoU.
proposals.png    the k best and k worst proposals by best IoU: the proposal in red, the
                 ground-truth mask it matches best in green, its expression and IoU under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shards.preview import render_cells
from unilseg.eval.overlays import LEGEND, draw_prediction, enlarge

COLOURS = [(200, 30, 30), (30, 90, 200), (40, 150, 60), (230, 130, 20), (140, 40, 170)]
_MARGIN = (56, 16, 28, 36)  # left, right, top, bottom, in pixels


class _Axes:
    """A plot area on a PIL image: data coordinates -> pixels, with a frame and grid."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xr: tuple, yr: tuple):
        self.draw, self.box, self.xr, self.yr = draw, box, xr, yr
        self.font = ImageFont.load_default(size=12)

    def xy(self, x: float, y: float) -> tuple[float, float]:
        (l, t, r, b), (x0, x1), (y0, y1) = self.box, self.xr, self.yr
        return l + (x - x0) / ((x1 - x0) or 1) * (r - l), b - (y - y0) / ((y1 - y0) or 1) * (b - t)

    def frame(self, xlabel: str, ylabel: str, xticks: Sequence[float] | None = None) -> None:
        """Frame, y grid at quarters, x ticks (the ends and the middle unless given), labels."""
        l, t, r, b = self.box
        self.draw.rectangle([l, t, r, b], outline=(120, 120, 120))
        for i in range(5):
            yv = self.yr[0] + (self.yr[1] - self.yr[0]) * i / 4
            _, y = self.xy(self.xr[0], yv)
            self.draw.line([l, y, r, y], fill=(232, 232, 232))
            self.draw.text((l - 40, y - 7), f"{yv:.3g}", fill="black", font=self.font)
        x0, x1 = self.xr
        for xv in xticks if xticks is not None else (x0, (x0 + x1) / 2, x1):
            x, _ = self.xy(xv, self.yr[0])
            self.draw.line([x, b, x, b + 3], fill=(120, 120, 120))
            self.draw.text((x - 12, b + 4), f"{xv:.3g}", fill="black", font=self.font)
        self.draw.text(((l + r) // 2 - 3 * len(xlabel), b + 18), xlabel, fill="black", font=self.font)
        self.draw.text((l, t - 16), ylabel, fill="black", font=self.font)


def recall_curve(curves: dict[str, Sequence[float]], thresholds: Sequence[float], out: Path) -> Path:
    """recall.png: one line per curve (NaN points are left out)."""
    img = Image.new("RGB", (640, 380), "white")
    draw = ImageDraw.Draw(img)
    l, r, t, b = _MARGIN[0], 640 - _MARGIN[1], _MARGIN[2] + 14, 380 - _MARGIN[3]
    ax = _Axes(draw, (l, t, r, b), (thresholds[0], thresholds[-1]), (0.0, 1.0))
    ax.frame("IoU threshold", "recall (top 100 proposals per image)", xticks=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95))
    for i, (name, ys) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = [ax.xy(x, y) for x, y in zip(thresholds, ys) if y == y]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((r - 80 * (len(curves) - i), 6), name, fill=colour, font=ax.font)
    img.save(out)
    return out


def score_scatter(points: dict[str, tuple[Sequence[float], Sequence[float]]], out: Path) -> Path | None:
    """scores.png: a panel per score, x = score, y = best IoU; None when there is no score."""
    panels = [(k, np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in points.items() if len(x)]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    pw, ph = 320, 260
    img = Image.new("RGB", (cols * pw, rows * ph), "white")
    draw = ImageDraw.Draw(img)
    for i, (name, xs, ys) in enumerate(panels):
        x0, y0 = (i % cols) * pw, (i // cols) * ph
        lo, hi = float(xs.min()), float(xs.max())
        ax = _Axes(draw, (x0 + 50, y0 + 24, x0 + pw - 14, y0 + ph - 40), (lo, hi if hi > lo else lo + 1), (0.0, 1.0))
        ax.frame(name, "best IoU")
        for x, y in zip(xs, ys):
            px, py = ax.xy(x, y)
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(30, 90, 200))
    img.save(out)
    return out


def best_worst_sheet(
    items: Sequence[dict[str, Any]],
    images: dict[str, np.ndarray],
    out: Path,
    k: int,
    best: Sequence[int],
    worst: Sequence[int],
) -> dict[str, Any] | None:
    """proposals.png: the k best and k worst proposals by best IoU.

    Args:
        items: proposals with ``key``, ``iou``, ``expression``, ``pred`` ((H, W) bool) and
            ``gt`` ((H, W) bool, or None when the image has no ground truth).
        images: key -> (H, W, 3) uint8 image, for the keys of the drawn items.
        out: PNG path.
        k: cells per row.
        best, worst: indices of the items of each row (``best_and_worst`` of their IoUs).

    Returns:
        dict | None: what was drawn (legend and the ids), None when there is no proposal.
    """
    if not items:
        return None

    def cell(i: int, label: str) -> tuple[np.ndarray, str]:
        it = items[i]
        pic = enlarge(draw_prediction(images[it["key"]], it["pred"], it["gt"]))
        return pic, f"{label}: IoU {it['iou']:.3f} {it['expression']}"

    cells = [cell(i, f"best {r + 1}") for r, i in enumerate(best)]
    if best:
        cells += [(np.full((8, 8, 3), 255, np.uint8), "")] * (k - len(best))
    cells += [cell(i, f"worst {r + 1}") for r, i in enumerate(worst)]
    render_cells(cells, columns=k).save(out)
    return {
        "legend": LEGEND.replace("prediction", "proposal"),
        "best": [items[i]["id"] for i in best],
        "worst": [items[i]["id"] for i in worst],
    }
