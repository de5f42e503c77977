"""PASCAL VOC 2012 semantic segmentation -> "all <class>" semantic targets.

Layout, as ``VOCtrainval_11-May-2012.tar`` unpacks (point SRC at ``VOCdevkit/VOC2012``)::

    SRC/JPEGImages/<id>.jpg
    SRC/SegmentationClass/<id>.png          a palette PNG whose pixel values are class indices:
                                            0 = background, 1..20 the classes below,
                                            255 = the "void" border (belongs to no class)
    SRC/ImageSets/Segmentation/train.txt    one id per line; also val.txt, trainval.txt

Each split is the list of ids in ``ImageSets/Segmentation/<split>.txt`` (train, val and
trainval, those present). Every class present in an image becomes one target, "all <class>"
(task semantic, granularity class); background and void pixels belong to no target. A listed
id without its image or mask, an unreadable file, a mask of another size than the image, or
a mask value outside 0..20 and 255 is quarantined with the reason.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from shards.converters import ConvertError, Item, Rejected, image_sample, order_splits, register_converter
from shards.format import Sample, Target
from shards.images import prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle

# The 20 classes in index order (index = position + 1), as the devkit names them.
CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
# The devkit's run-together names, written as a person would in a prompt.
READABLE = {"diningtable": "dining table", "pottedplant": "potted plant", "tvmonitor": "tv monitor"}
VOID = 255
SPLITS = ("train", "val", "trainval")
SETS_DIR = Path("ImageSets") / "Segmentation"


def read_class_png(path: Path) -> np.ndarray:
    """Reads a VOC class-index PNG (palette or greyscale) into (H, W) int64 indices.

    Raises:
        ConvertError: unreadable, or a colour PNG (its pixels are not indices).
    """
    try:
        img = Image.open(io.BytesIO(path.read_bytes()))
        img.load()
    except Exception as e:
        raise ConvertError(f"unreadable mask {path.name}: {type(e).__name__}: {e}") from e
    if img.mode not in ("P", "L"):
        raise ConvertError(f"mask {path.name} is {img.mode}; expected a palette (P) PNG of class indices")
    return np.asarray(img).astype(np.int64)


def voc_sample(image_path: Path, mask_path: Path, image_id: str, source: str) -> Sample:
    """Reads one image and its class-index mask into a Sample with a target per class present."""
    rel = f"JPEGImages/{image_path.name}"
    stored = prepare_image(image_path.read_bytes())
    label = read_class_png(mask_path)
    if label.shape != (stored.height, stored.width):
        raise ConvertError(
            f"mask is {label.shape[1]}x{label.shape[0]}, the image {stored.width}x{stored.height} "
            "(as displayed, EXIF orientation applied)"
        )
    values = np.unique(label)
    bad = [int(v) for v in values if not (0 <= v <= len(CLASSES) or v == VOID)]
    if bad:
        raise ConvertError(f"mask has value(s) {bad[:5]}, outside 0..{len(CLASSES)} and {VOID} (void)")
    targets = []
    for v in values[(values > 0) & (values != VOID)]:
        name = CLASSES[v - 1]
        targets.append(
            Target(
                texts=[f"all {READABLE.get(name, name)}"],
                mask=mask_to_rle(label == v),
                task="semantic",
                granularity="class",
                source=source,
                provenance={"image_id": image_id, "class_index": int(v), "class": name},
            )
        )
    if not targets:
        raise ConvertError("mask has only background (0) and void (255) pixels")
    return image_sample(source, rel, rel, stored, targets)


def read_ids(path: Path) -> list[str]:
    """The ids of an ImageSets list, in file order, each once (blank lines skipped)."""
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(dict.fromkeys(ids))


def voc_splits(src: Path, **_: object) -> list[str]:
    """train / val / trainval, for each ImageSets/Segmentation/<split>.txt present."""
    return order_splits(s for s in SPLITS if (src / SETS_DIR / f"{s}.txt").is_file())


@register_converter("voc", splits=voc_splits)
def convert_voc(src: Path, split: str = "train", name: str | None = None) -> Iterator[Item | Rejected]:
    """PASCAL VOC 2012 segmentation -> "all <class>" targets (task semantic, granularity class).

    Args:
        src: the VOC2012 folder (holding JPEGImages, SegmentationClass, ImageSets).
        split: the id list to convert, ImageSets/Segmentation/<split>.txt.
        name: source name; default "voc".
    """
    list_file = src / SETS_DIR / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(
            f"{list_file} does not exist (expected VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt; "
            "point SRC at the VOC2012 folder)"
        )
    source = name or "voc"
    for image_id in read_ids(list_file):
        image_path = src / "JPEGImages" / f"{image_id}.jpg"
        mask_path = src / "SegmentationClass" / f"{image_id}.png"
        rel = f"JPEGImages/{image_path.name}"
        if not image_path.is_file():
            yield Rejected(rel, f"listed in {split}.txt but there is no JPEGImages/{image_id}.jpg")
            continue
        if not mask_path.is_file():
            yield Rejected(rel, f"no mask SegmentationClass/{image_id}.png")
            continue
        yield Item(
            make_key(source, rel),
            rel,
            lambda i=image_path, m=mask_path, d=image_id: voc_sample(i, m, d, source),
        )
