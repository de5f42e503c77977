"""Turning an input image file into what a sample stores.

What a sample stores, and what its masks must match, is the image as a person sees it:
EXIF orientation applied. Bytes are kept as they are when they are already a JPEG or PNG
that any decoder shows that way (no rotation pending, 8-bit, a common mode); otherwise
the image is re-encoded losslessly as PNG (orientation applied, CMYK and 16-bit
converted to 8-bit RGB / L).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from common.errors import UniLSegError, describe

# Larger images are treated as decompression bombs and rejected (~ 16k x 16k).
DEFAULT_MAX_PIXELS = 268_435_456
# File suffixes taken for images when a folder is listed (annotation inputs, mask-folder sets).
IMAGE_FILE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_KEEP_MODES = {"RGB", "L", "RGBA", "LA", "P"}
_EXIF_ORIENTATION = 0x0112


class ImageError(UniLSegError):
    """An input is not an image we can store; the message is the quarantine reason."""


@dataclass
class StoredImage:
    """An input image ready to be stored.

    Attributes:
        data (bytes): encoded bytes to write into the shard.
        ext (str): "jpg" or "png".
        width (int): width as a person sees it.
        height (int): height as a person sees it.
        sha256 (str): sha256 of the ORIGINAL input bytes (keys incremental runs).
        rgb (np.ndarray): (H, W, 3) uint8 pixels, the same any reader decodes.
    """

    data: bytes
    ext: str
    width: int
    height: int
    sha256: str
    rgb: np.ndarray


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Opens and fully decodes image bytes, or raises ImageError saying why not."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise ImageError(f"image has {img.width * img.height} pixels, over the limit {max_pixels}")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"decompression bomb: {describe(e)}") from e
    except Exception as e:  # PIL raises many types for corrupt data
        raise ImageError(f"not a readable image: {type(e).__name__}: {describe(e)}") from e
    return img


def read_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An input file's pixels as a person sees them: (H, W, 3) uint8 RGB, EXIF orientation applied.

    Raises:
        ImageError: empty file, not an image, truncated/corrupt, or over the pixel limit.
    """
    return np.asarray(_to_rgb(ImageOps.exif_transpose(_open_checked(data, max_pixels))))


def prepare_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> StoredImage:
    """Validates and normalises an input image.

    Args:
        data (bytes): the input file's bytes.
        max_pixels (int): pixel limit; larger images are rejected as decompression bombs.

    Raises:
        ImageError: empty file, not an image, truncated/corrupt, or over the pixel limit.
    """
    img = _open_checked(data, max_pixels)
    fmt = img.format
    orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    keep = fmt in ("JPEG", "PNG") and orientation in (1, None) and img.mode in _KEEP_MODES
    shown = ImageOps.exif_transpose(img) if orientation not in (1, None) else img
    rgb = np.asarray(_to_rgb(shown))
    if keep:
        return StoredImage(data, "jpg" if fmt == "JPEG" else "png", shown.width, shown.height, sha256_bytes(data), rgb)
    out = _to_storable(shown)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return StoredImage(buf.getvalue(), "png", out.width, out.height, sha256_bytes(data), np.asarray(_to_rgb(out)))


def _to_storable(img: Image.Image) -> Image.Image:
    """8-bit RGB/RGBA/L version of an image (CMYK, 16-bit, float modes converted)."""
    if img.mode in _KEEP_MODES:
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """The RGB view every reader uses (alpha dropped, palette expanded)."""
    if img.mode == "RGB":
        return img
    return _to_storable(img).convert("RGB")


def decode_image(data: bytes) -> np.ndarray:
    """Decodes stored image bytes to (H, W, 3) uint8 RGB, as readers see them."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(_to_rgb(img))
