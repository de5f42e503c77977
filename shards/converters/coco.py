"""COCO instances and COCO panoptic -> "all <class>" semantic targets (and optional instances).

Layouts, as the COCO downloads unpack::

    SRC/annotations/instances_train2017.json     (instances_val2017.json, instances_train2014.json, ...)
    SRC/annotations/panoptic_train2017.json      segments_info per image
    SRC/annotations/panoptic_train2017/*.png     one PNG per image: segment id = R + 256*G + 256^2*B
    SRC/train2017/*.jpg                          the images

``--split train`` finds ``instances_train*.json`` (one match needed; the ``annotations``
option names a file explicitly). The image folder defaults to ``SRC/<json stem without the
prefix>`` (``SRC/train2017``), else ``SRC/images``.

Targets per image: for each category present, the union of its annotations (crowd regions
included), text "all <class>", task "semantic", granularity "class". With ``instances=True``
also every non-crowd instance (panoptic: every non-crowd "thing" segment), text
"the <class>", task "instance", granularity "instance". Stuff names lose COCO's suffixes
("wall-other-merged" -> "wall").
"""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shards.converters import ConvertError, Item, Rejected, image_sample, order_splits, register_converter
from shards.converters.coco_json import (
    annotation_rle,
    checked_images,
    clean_name,
    find_one,
    index_coco,
    load_json,
    nonempty,
    read_image,
    stream_coco,
)
from shards.format import Sample, Target
from shards.images import StoredImage
from shards.keys import make_key
from shards.rle import mask_to_rle, merge_rles

log = logging.getLogger(__name__)


def find_annotation_file(src: Path, prefix: str, split: str, annotations: str | None) -> Path:
    """``<prefix>_<split>*.json`` under src/annotations or src (or the explicit ``annotations`` path)."""
    if annotations:
        path = Path(annotations)
        if not path.is_absolute() and not path.exists():
            path = src / annotations
        if not path.is_file():
            raise FileNotFoundError(f"annotation file {path} does not exist")
        return path
    return find_one(
        src,
        [
            f"annotations/{prefix}_{split}.json",
            f"{prefix}_{split}.json",
            f"annotations/{prefix}_{split}*.json",
            f"{prefix}_{split}*.json",
        ],
        f"{prefix}_{split}*.json annotation file",
    )


def annotation_splits(src: Path, prefix: str, annotations: str | None) -> list[str] | None:
    """Split names of the ``<prefix>_<split><year>.json`` files under src/annotations or src
    (instances_train2017.json -> train); None with an explicit annotation file."""
    if annotations:
        return None
    stems = [
        p.stem[len(prefix) + 1 :] for d in (src / "annotations", src) for p in d.glob(f"{prefix}_*.json") if p.is_file()
    ]
    return order_splits(re.sub(r"\d+$", "", s) or s for s in stems)


def images_folder(src: Path, ann_file: Path, prefix: str, images: str | None) -> Path:
    """The image folder: the option, else ``src/<stem>`` (stem of the JSON without its prefix)."""
    if images:
        return Path(images)
    stem = ann_file.stem[len(prefix) + 1 :]
    for c in (src / stem, src / "images" / stem):
        if c.is_dir():
            return c
    return src / "images"


def _sample(source: str, image: dict, stored: StoredImage, targets: list[Target]) -> Sample:
    if not targets:
        raise ConvertError("no non-empty mask in this image")
    return image_sample(source, image["file_name"], str(image["id"]), stored, targets)


def build_instances_sample(
    images_dir: Path, image: dict, anns: list[dict], cats: dict, source: str, instances: bool
) -> Sample:
    """One COCO image: a semantic target per category present, plus instance targets if asked."""
    stored = read_image(images_dir, image)
    by_cat: dict[int, list[tuple[dict, dict]]] = defaultdict(list)
    for ann in anns:
        rle = annotation_rle(ann, image)
        if nonempty(rle):
            by_cat[ann["category_id"]].append((ann, rle))
    targets = []
    for cat_id in sorted(by_cat):
        name = clean_name(cats[cat_id]["name"])
        items = by_cat[cat_id]
        targets.append(
            Target(
                [f"all {name}"],
                merge_rles([r for _, r in items]),
                "semantic",
                "class",
                source,
                provenance={"category_id": cat_id, "ann_ids": [a["id"] for a, _ in items]},
            )
        )
        if instances:
            targets += [
                Target(
                    [f"the {name}"],
                    r,
                    "instance",
                    "instance",
                    source,
                    provenance={"category_id": cat_id, "ann_id": a["id"]},
                )
                for a, r in items
                if not a.get("iscrowd")
            ]
    return _sample(source, image, stored, targets)


@register_converter(
    "coco-instances", splits=lambda src, annotations=None, **_: annotation_splits(src, "instances", annotations)
)
def convert_coco_instances(
    src: Path,
    split: str = "train",
    images: str | None = None,
    annotations: str | None = None,
    instances: bool = False,
    name: str | None = None,
) -> Iterator[Item | Rejected]:
    """COCO instances JSON -> "all <class>" targets (+ "the <class>" instances with instances=True).

    Args:
        src: the COCO root (with ``annotations/``).
        split: selects ``instances_<split>*.json`` (train -> instances_train2017.json).
        images: image folder; default ``src/<split><year>``.
        annotations: explicit annotation file, instead of the search by split.
        instances: also write one target per non-crowd instance.
        name: source name; default ``coco:<json stem>``.
    """
    ann_file = find_annotation_file(src, "instances", split, annotations)
    idx = stream_coco(ann_file)
    images_dir = images_folder(src, ann_file, "instances", images)
    source = name or f"coco:{ann_file.stem}"
    for entry in checked_images(idx):
        if isinstance(entry, Rejected):
            yield entry
            continue
        image, good = entry
        yield Item(
            make_key(source, image["file_name"]),
            image["file_name"],
            lambda im=image, a=good: build_instances_sample(images_dir, im, a, idx.cats, source, instances),
        )


def read_panoptic_ids(path: Path) -> np.ndarray:
    """Decodes a panoptic PNG into (H, W) uint32 segment ids (R + 256*G + 256^2*B)."""
    if not path.is_file():
        raise ConvertError(f"missing panoptic PNG {path}")
    try:
        img = Image.open(io.BytesIO(path.read_bytes()))
        img.load()
    except Exception as e:
        raise ConvertError(f"unreadable panoptic PNG {path.name}: {type(e).__name__}: {e}") from e
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def build_panoptic_sample(
    images_dir: Path, png_path: Path, image: dict, segments: list[dict], cats: dict, source: str, instances: bool
) -> Sample:
    """One panoptic image: a semantic target per category present, plus thing instances if asked."""
    stored = read_image(images_dir, image)
    ids = read_panoptic_ids(png_path)
    if ids.shape != (stored.height, stored.width):
        raise ConvertError(f"panoptic PNG is {ids.shape[1]}x{ids.shape[0]}, the image {stored.width}x{stored.height}")
    by_cat: dict[int, list[tuple[dict, np.ndarray]]] = defaultdict(list)
    for seg in segments:
        mask = ids == seg["id"]
        if not mask.any():
            log.warning("%s: segment %s is not in the PNG; dropped", png_path.name, seg["id"])
            continue
        by_cat[seg["category_id"]].append((seg, mask))
    targets = []
    for cat_id in sorted(by_cat):
        cat, items = cats[cat_id], by_cat[cat_id]
        name = clean_name(cat["name"])
        union = np.logical_or.reduce([m for _, m in items])
        targets.append(
            Target(
                [f"all {name}"],
                mask_to_rle(union),
                "semantic",
                "class",
                source,
                provenance={"category_id": cat_id, "segment_ids": [s["id"] for s, _ in items]},
            )
        )
        if instances and cat.get("isthing", 1):
            targets += [
                Target(
                    [f"the {name}"],
                    mask_to_rle(m),
                    "instance",
                    "instance",
                    source,
                    provenance={"category_id": cat_id, "segment_id": s["id"]},
                )
                for s, m in items
                if not s.get("iscrowd")
            ]
    return _sample(source, image, stored, targets)


@register_converter(
    "coco-panoptic", splits=lambda src, annotations=None, **_: annotation_splits(src, "panoptic", annotations)
)
def convert_coco_panoptic(
    src: Path,
    split: str = "train",
    images: str | None = None,
    annotations: str | None = None,
    masks: str | None = None,
    instances: bool = False,
    name: str | None = None,
) -> Iterator[Item | Rejected]:
    """COCO panoptic (JSON + PNG folder) -> "all <class>" targets (+ thing instances with instances=True).

    Args:
        src: the COCO root (with ``annotations/``).
        split: selects ``panoptic_<split>*.json``.
        images: image folder; default ``src/<split><year>``.
        annotations: explicit panoptic JSON, instead of the search by split.
        masks: folder of panoptic PNGs; default the folder named like the JSON, beside it.
        instances: also write one target per non-crowd thing segment.
        name: source name; default ``coco:<json stem>``.
    """
    ann_file = find_annotation_file(src, "panoptic", split, annotations)
    doc = load_json(ann_file)
    idx = index_coco(doc, ann_file.name, annotations=False)
    png_dir = Path(masks) if masks else ann_file.parent / ann_file.stem
    if not png_dir.is_dir():
        raise FileNotFoundError(
            f"panoptic PNG folder {png_dir} does not exist (unzip {ann_file.stem}.zip there or pass the masks option)"
        )
    images_dir = images_folder(src, ann_file, "panoptic", images)
    source = name or f"coco:{ann_file.stem}"
    records: list[dict[str, Any]] = sorted(doc.get("annotations") or [], key=lambda r: r.get("image_id"))
    for rec in records:
        image = idx.images.get(rec.get("image_id"))
        label = rec.get("file_name") or f"image {rec.get('image_id')}"
        if image is None:
            yield Rejected(label, f"image {rec.get('image_id')} is not in the images list")
            continue
        if not rec.get("file_name"):
            yield Rejected(label, "the panoptic record names no PNG (file_name)")
            continue
        good = []
        for seg in rec.get("segments_info") or []:
            if seg.get("category_id") not in idx.cats:
                yield Rejected(
                    f"{label}#segment{seg.get('id')}",
                    f"segment {seg.get('id')} has an unknown category id {seg.get('category_id')!r}",
                )
            else:
                good.append(seg)
        if good:
            yield Item(
                make_key(source, image["file_name"]),
                image["file_name"],
                lambda im=image, s=good, p=png_dir / rec["file_name"]: build_panoptic_sample(
                    images_dir, p, im, s, idx.cats, source, instances
                ),
            )
