"""Image/mask folder sets: salient object (DUTS, ECSSD...) and camouflaged object (COD10K, CAMO...).

Layouts found anywhere under SRC (pairs of sibling folders, files paired by stem):
- ``<X>-Image/*.jpg`` + ``<X>-Mask/*.png`` (DUTS: ``DUTS-TR/DUTS-TR-Image``, ``DUTS-TR-Mask``)
- ``Imgs/`` + ``GT/`` (SINet-style COD training sets), ``Image/`` + ``GT_Object/`` (COD10K-v3),
  ``Images/`` + ``GT/`` (CAMO), ``images/`` + ``masks/``.
Masks are 8-bit greyscale (any mode is converted); foreground is > 127.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from shards.converters import ConvertError, Item, Rejected, image_sample, register_converter
from shards.format import Sample, Target
from shards.images import IMAGE_FILE_SUFFIXES, prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle

# (image folder name, mask folder name) of sibling folders.
FOLDER_PAIRS = [("Imgs", "GT"), ("Image", "GT_Object"), ("Images", "GT"), ("images", "masks")]
PROMPTS = {"sod": "the most salient object", "cod": "the camouflaged object"}


def find_folder_pairs(src: Path) -> list[tuple[Path, Path]]:
    """Every (image dir, mask dir) pair under src, sorted for a deterministic order."""
    pairs = []
    for d in sorted(p for p in [src, *src.rglob("*")] if p.is_dir()):
        if d.name.endswith("-Image") and (d.parent / (d.name[:-6] + "-Mask")).is_dir():
            pairs.append((d, d.parent / (d.name[:-6] + "-Mask")))
        for img_name, mask_name in FOLDER_PAIRS:
            if d.name == img_name and (d.parent / mask_name).is_dir():
                pairs.append((d, d.parent / mask_name))
    return pairs


def _files_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_FILE_SUFFIXES}


def read_binary_mask(path: Path) -> np.ndarray:
    """Reads a mask image as bool (H, W): foreground is > 127 after conversion to 8-bit grey."""
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:
        raise ConvertError(f"unreadable mask {path.name}: {type(e).__name__}: {e}") from e
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return arr > (32767 if arr.max() > 255 else 127)
    return np.asarray(img.convert("L")) > 127


def mask_pair_sample(image_path: Path, mask_path: Path, task: str, source: str, rel: str) -> Sample:
    """Reads one image and its mask into a Sample with one target."""
    stored = prepare_image(image_path.read_bytes())
    mask = read_binary_mask(mask_path)
    if mask.shape != (stored.height, stored.width):
        raise ConvertError(
            f"mask size {mask.shape[1]}x{mask.shape[0]} differs from image size "
            f"{stored.width}x{stored.height} (as displayed, EXIF orientation applied)"
        )
    if not mask.any():
        raise ConvertError("mask is empty")
    target = Target(
        texts=[PROMPTS[task]],
        mask=mask_to_rle(mask),
        task=task,
        granularity="instance",
        source=source,
        provenance={"image": rel, "mask": str(mask_path.name)},
    )
    return image_sample(source, rel, rel, stored, [target])


def _folder_set(src: Path, task: str, name: str | None) -> Iterator[Item | Rejected]:
    pairs = find_folder_pairs(src)
    if not pairs:
        raise FileNotFoundError(
            f"no image/mask folder pair under {src} (expected e.g. DUTS-TR-Image + "
            f"DUTS-TR-Mask, Imgs + GT, Image + GT_Object)"
        )
    source = f"{task}:{name or src.name}"
    for img_dir, mask_dir in pairs:
        images, masks = _files_by_stem(img_dir), _files_by_stem(mask_dir)
        for stem, img_path in images.items():
            rel = str(img_path.relative_to(src))
            if stem not in masks:
                yield Rejected(rel, f"no mask for this image in {mask_dir.name}/")
                continue
            yield Item(
                make_key(source, rel),
                rel,
                lambda i=img_path, m=masks[stem], r=rel: mask_pair_sample(i, m, task, source, r),
            )
        for stem in sorted(set(masks) - set(images)):
            yield Rejected(str(masks[stem].relative_to(src)), f"mask without an image in {img_dir.name}/")


@register_converter("sod")
def convert_sod(src: Path, split: str = "train", name: str | None = None) -> Iterator[Item | Rejected]:
    """Salient object sets -> "the most salient object" targets (task sod)."""
    return _folder_set(src, "sod", name)


@register_converter("cod")
def convert_cod(src: Path, split: str = "train", name: str | None = None) -> Iterator[Item | Rejected]:
    """Camouflaged object sets -> "the camouflaged object" targets (task cod)."""
    return _folder_set(src, "cod", name)
