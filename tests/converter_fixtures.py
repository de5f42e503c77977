"""Builders of tiny labeled-set fixtures (COCO-style JSON, images, masks) for converter tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import encode
from pycocotools import mask as mask_utils


def write_image(path: Path, h: int, w: int, seed: int = 0, fmt: str = "JPEG") -> None:
    """A random RGB image of h x w at path (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    path.write_bytes(encode(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), fmt))


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """COCO polygon segmentation of an axis-aligned box."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def polygon_mask(segm: list, h: int, w: int) -> np.ndarray:
    """The (h, w) bool mask pycocotools rasterises for a polygon segmentation."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segm, h, w))).astype(bool)


def box_mask(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Bool mask with rows y0:y1 and columns x0:x1 set."""
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def compressed_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE (str counts) of a mask, as annotation files store it."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (list counts, column-major), as crowd annotations store it."""
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def read_quarantine(split_dir: Path) -> dict[str, str]:
    """input -> reason of a split's quarantine.jsonl."""
    path = split_dir / "quarantine.jsonl"
    if not path.exists():
        return {}
    return {r["input"]: r["reason"] for r in map(json.loads, path.read_text().splitlines())}
