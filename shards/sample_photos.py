"""scikit-image's bundled photos as an image folder: real pictures with no download, for the
demo's annotation stage, tests and benchmarks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from shards import storage

# What pipeline configs write for "this folder of photos" (flows export it on first use).
SAMPLE_PHOTOS_SOURCE = "sample-photos"
# Photos shipped inside the scikit-image wheel (no pooch download); grey ones become RGB.
SAMPLE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "camera",
    "coins",
    "moon",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "colorwheel",
)


def load_sample_photo(name: str) -> np.ndarray:
    """One bundled photo as (H, W, 3) uint8 RGB."""
    import skimage.data

    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLE_PHOTOS)}")
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo pairs: the left view
        img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def export_sample_photos(out: str | os.PathLike, names: tuple[str, ...] = SAMPLE_PHOTOS) -> list[Path | str]:
    """Writes the photos as JPEG files `OUT/<name>.jpg` (existing files are kept as they are);
    OUT is a local folder or an fsspec URL (each file appears complete or not at all).

    Returns:
        list[Path | str]: the files, in the order of `names` (Paths when local).
    """
    storage.makedirs(out)
    paths = []
    for name in names:
        path = storage.join(out, f"{name}.jpg")
        if not storage.exists(path):
            buf = io.BytesIO()
            Image.fromarray(load_sample_photo(name)).save(buf, format="JPEG", quality=95)
            storage.write_bytes(path, buf.getvalue())
        paths.append(Path(path) if storage.is_local(path) else path)
    return paths
