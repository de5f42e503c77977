"""Mask <-> COCO RLE helpers, all built on pycocotools (never hand-written RLE).

An RLE in our format is the JSON-friendly COCO form ``{"size": [h, w], "counts": str}``
with compressed counts. Masks are boolean arrays of shape (H, W).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from common.errors import UniLSegError


class RLEError(UniLSegError):
    """Raised when an RLE or polygon cannot be decoded or is not of our form."""


# Compressed counts use the 64 characters chr(48)..chr(111), i.e. "0".."o".
_BAD_CHAR = re.compile(r"[^0-o]")


class EncodedRLE(dict):
    """An RLE that pycocotools encoded here, so valid for its size by construction.

    A plain ``{"size": [h, w], "counts": str}`` dict to everything else (JSON, equality,
    pickling). It remembers the counts string it was made with, its size and its area:
    ``validate_rle`` returns that area without decoding the counts while "counts" is still
    that very string object and "size" still equals it. A replaced string, a changed size
    or a copy into a plain dict (e.g. read back from a shard) is decoded and checked in full.
    """

    def __init__(self, size: Sequence[int], counts: str, area: int):
        h, w = int(size[0]), int(size[1])
        super().__init__(size=[h, w], counts=counts)
        self._encoded = (counts, [h, w], int(area))

    def checked_area(self) -> int | None:
        """The area if the RLE is still as encoded, else None (then validate it in full)."""
        counts, size, area = self._encoded
        return area if self.get("counts") is counts and self.get("size") == size else None


def _from_coco(rle: dict[str, Any]) -> EncodedRLE:
    """pycocotools' output RLE (bytes counts) -> our JSON form, with its area (exact below 2**32 pixels)."""
    h, w = int(rle["size"][0]), int(rle["size"][1])
    area = (
        int(mask_utils.area(rle))
        if h * w < 2**32
        else validate_rle({"size": [h, w], "counts": rle["counts"].decode("ascii")})
    )
    return EncodedRLE([h, w], rle["counts"].decode("ascii"), area)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encodes a 2-D mask as compressed COCO RLE.

    Args:
        mask (np.ndarray): (H, W) array; any nonzero value is foreground.

    Returns:
        dict: ``{"size": [H, W], "counts": str}`` (an EncodedRLE: validating it is free).
    """
    if mask.ndim != 2:
        raise RLEError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    fortran = np.asfortranarray(mask.astype(np.uint8, copy=False) != 0, dtype=np.uint8)
    rle = mask_utils.encode(fortran)
    return EncodedRLE(rle["size"], rle["counts"].decode("ascii"), np.count_nonzero(fortran))


def _as_coco(rle: dict[str, Any], check: bool = True) -> dict[str, Any]:
    """Turns our JSON form (str counts) into pycocotools' form (bytes counts)."""
    if check:
        validate_rle(rle)
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed COCO RLE, as iscrowd annotations store it
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    return {"size": list(rle["size"]), "counts": counts.encode("ascii")}


def validate_rle(rle: Any) -> int:
    """Checks the structure of an RLE and that its counts cover exactly H*W pixels.

    Returns:
        int: the foreground area, which validation computes anyway.

    Raises:
        RLEError: with a message naming what is wrong.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RLEError(f"RLE must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise RLEError(f"RLE size must be [h, w] of positive ints, got {size!r}")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != size[0] * size[1]:
            raise RLEError("uncompressed RLE counts must be non-negative ints summing to h*w")
        return sum(counts[1::2])
    if not isinstance(counts, str) or not counts:
        raise RLEError("RLE counts must be a non-empty string (compressed COCO RLE)")
    if type(rle) is EncodedRLE and (area := rle.checked_area()) is not None:
        return area  # pycocotools encoded exactly this string for this size
    # pycocotools does not check that counts match the size: decode the run lengths
    # ourselves from its LEB128-like alphabet only to validate the total.
    runs = _decode_runs(counts)
    total = int(runs.sum())
    if total != size[0] * size[1]:
        raise RLEError(f"RLE counts cover {total} pixels, size {size} needs {size[0] * size[1]}")
    return int(runs[1::2].sum())  # odd runs are foreground


def _compressed_total(counts: str) -> int:
    """Total pixels covered by a compressed COCO counts string."""
    return int(_decode_runs(counts).sum())


def _decode_runs(counts: str) -> np.ndarray:
    """Run lengths (background first, alternating) of a compressed COCO counts string.

    Mirrors pycocotools' ``rleFrString``, vectorised: each run is a group of 5-bit
    chunks (bit 0x20 = more chunks follow), the last chunk's bit 0x10 sign-extends, and
    every run after the second is stored as a delta against the run two places back.
    About 30 numpy calls whatever the length, so a 200-character string costs ~30 us.

    Raises:
        RLEError: non-ASCII or out-of-alphabet characters, a truncated or overlong
            (> 12 chunks) run, or a run that decodes to a negative length.
    """
    if not counts.isascii():
        raise RLEError("RLE counts must be ASCII")
    if _BAD_CHAR.search(counts):
        raise RLEError("RLE counts has an invalid character")
    c = np.frombuffer(counts.encode("ascii"), np.uint8) - np.uint8(48)  # each in 0..63
    ends = np.flatnonzero(c < 0x20)  # the last chunk of each run has no "more" bit
    n = len(c)
    if not len(ends) or ends[-1] != n - 1:
        raise RLEError("RLE counts string is truncated")
    if len(ends) == n:  # every run is a single chunk: sign-extend its 5 bits
        low = c.astype(np.int64)
        x = (low & 0xF) - (low & 0x10)
    else:
        starts = np.empty_like(ends)  # first chunk of each run (np.diff is slow on short arrays)
        starts[0] = 0
        np.add(ends[:-1], 1, out=starts[1:])
        chunks = ends - starts + 1  # chunks per run
        if chunks.max() > 12:
            raise RLEError("RLE counts has an overlong run")
        k = np.arange(n) - np.repeat(starts, chunks)  # chunk index within its run
        x = np.add.reduceat((c & 0x1F).astype(np.int64) << (5 * k), starts)
        x -= (c[ends] & 0x10).astype(np.int64) << (5 * chunks - 4)  # sign bit 0x10 -> -2**(5 * chunks)
    m = len(x)
    if m > 3:  # undo the deltas: runs[i] = x[i] + runs[i - 2] for i > 2, i.e. per-parity cumsums
        pairs = np.zeros(m + (m & 1), np.int64)
        pairs[:m] = x
        sums = pairs.reshape(-1, 2).cumsum(axis=0)
        sums[1:, 0] -= x[0]  # the first background run is not a delta base
        x = sums.ravel()[:m]
    if (x < 0).any():
        raise RLEError("RLE counts decode to a negative run length")
    return x


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decodes an RLE into a boolean (H, W) mask."""
    return mask_utils.decode(_as_coco(rle)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of an RLE, without decoding the mask."""
    return validate_rle(rle)


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict[str, Any]:
    """Rasterises COCO polygons ([[x0, y0, x1, y1, ...], ...]) into one merged RLE."""
    polys = [list(map(float, p)) for p in polygons]
    if not polys or any(len(p) < 6 or len(p) % 2 for p in polys):
        raise RLEError("polygons must be lists of at least 3 (x, y) points")
    rles = mask_utils.frPyObjects(polys, height, width)
    return _from_coco(mask_utils.merge(rles))


def coco_segmentation_to_rle(segm: Any, height: int, width: int) -> dict[str, Any]:
    """Any COCO ``segmentation`` field (polygons, RLE or uncompressed RLE) -> our RLE form."""
    if isinstance(segm, list):
        return polygons_to_rle(segm, height, width)
    if isinstance(segm, dict):
        counts = segm.get("counts")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        rle = {"size": segm.get("size"), "counts": counts}
        area = validate_rle(rle)
        if isinstance(counts, list):  # uncompressed (iscrowd) RLE: re-encode compressed
            return mask_to_rle(rle_to_mask(rle))
        return EncodedRLE(rle["size"], counts, area)  # just checked in full
    raise RLEError(f"unsupported segmentation type {type(segm).__name__}")


def merge_rles(rles: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Union of several RLEs of one size."""
    if not rles:
        raise RLEError("merge_rles needs at least one RLE")
    return _from_coco(mask_utils.merge([_as_coco(r) for r in rles], intersect=False))
