"""Contact sheets: images with their masks overlaid and the texts written under them."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shards import storage
from shards.integrity import check_split, guarded
from shards.reader import ShardReader

CELL = 224
TEXT_LINES = 4
# Distinct overlay colours, cycled per target.
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def overlay(rgb: np.ndarray, mask: np.ndarray | None, color: tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    """Blends a colour into the masked pixels and outlines the mask.

    Args:
        rgb: (H, W, 3) uint8 image.
        mask: (H, W) bool mask, or None (no-target expression: the image is dimmed).
    """
    out = rgb.astype(np.float32)
    if mask is None:
        return (out * 0.35).astype(np.uint8)
    out[mask] = out[mask] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    edge = mask ^ _erode(mask)
    out[edge] = color
    return out.astype(np.uint8)


def _erode(mask: np.ndarray) -> np.ndarray:
    m = mask.copy()
    m[1:, :] &= mask[:-1, :]
    m[:-1, :] &= mask[1:, :]
    m[:, 1:] &= mask[:, :-1]
    m[:, :-1] &= mask[:, 1:]
    return m


def render_cells(cells: Iterable[tuple[np.ndarray, str]], columns: int = 6) -> Image.Image:
    """Lays out (picture, caption) cells on a white sheet.

    Args:
        cells: (H, W, 3) uint8 pictures with their caption text.
        columns: cells per row.
    """
    cells = list(cells)
    if not cells:
        raise ValueError("nothing to draw: no targets")
    font = ImageFont.load_default(size=13)
    line_h = 16
    cell_h = CELL + TEXT_LINES * line_h + 8
    rows = (len(cells) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * CELL, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (pic, caption) in enumerate(cells):
        x, y = (i % columns) * CELL, (i // columns) * cell_h
        thumb = Image.fromarray(pic)
        thumb.thumbnail((CELL - 8, CELL - 8))
        sheet.paste(thumb, (x + (CELL - thumb.width) // 2, y + 4 + (CELL - 8 - thumb.height) // 2))
        lines = textwrap.wrap(caption, width=30)[:TEXT_LINES]
        for j, line in enumerate(lines):
            draw.text((x + 6, y + CELL + j * line_h), line, fill="black", font=font)
    return sheet


def preview_split(
    split_dir: str | os.PathLike,
    out: str | os.PathLike,
    limit: int = 36,
    columns: int = 6,
    tasks: Sequence[str] | None = None,
) -> int:
    """Writes a contact sheet of the first ``limit`` targets of a split; returns the count drawn.

    The split and ``out`` (an image file, its format from its extension) may be local paths or
    URLs; the sheet appears complete or not at all (shards.storage.staged_output).

    Raises:
        ShardError: the split is damaged (shards.integrity); nothing is written then.
    """
    check_split(split_dir)
    cells = []
    for sample, _i, t in guarded(ShardReader(split_dir).targets(), split_dir):
        if tasks and t.task not in tasks:
            continue
        caption = f"{' | '.join(t.texts)}  [{t.task}/{t.granularity}]"
        cells.append((overlay(sample.rgb, t.mask_array(), PALETTE[len(cells) % len(PALETTE)]), caption))
        if len(cells) >= limit:
            break
    fmt = Image.registered_extensions().get(os.path.splitext(storage.name(out))[1].lower(), "PNG")
    with storage.staged_output(out) as staged:
        render_cells(cells, columns).save(staged, format=fmt)
    return len(cells)
