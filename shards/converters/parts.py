"""Part sets in COCO-style JSON -> "the <part> of the <object>" targets: PACO and PartImageNet.

PACO (github.com/facebookresearch/paco), as its ``_PREDEFINED_PACO`` registers it::

    datasets/paco/annotations/paco_lvis_v1_{train,val,test}.json   (paco_ego4d_v1_*.json)
    datasets/coco/train2017/*.jpg          image file_name is "train2017/000000xxxxxx.jpg"
    datasets/paco/images/...               PACO-Ego4D frames

Its ``categories`` hold the 75 objects ("car_(automobile)") and the object-part pairs named
"<object>:<part>" ("bicycle:wheel"); a part annotation points to its object with
``obj_ann_id``; segmentations are RLE. ``SRC`` is the paco folder.

PartImageNet (github.com/TACJu/PartImageNet), COCO-style, as downloaded::

    PartImageNet/train.json, val.json, test.json     (or annotations/<split>.json)
    PartImageNet/train/n01440764/n01440764_10043.JPEG   file_name is "n01440764_10043.JPEG"

Its categories are parts named "<Supercategory> <Part>" ("Quadruped Head", supercategory
"Quadruped"); polygons may contain 1- and 2-point rings, which are dropped.

Targets per image: the union of each (object, part) pair's annotations, text
"the <part> of the <object>", task "part", granularity "part"; and, where the set
annotates objects (PACO), the union of each object category, text "all <object>", task
"semantic", granularity "class" (skipped for categories an image lists as not exhaustively
annotated, LVIS's ``not_exhaustive_category_ids``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from shards.converters import ConvertError, Item, Rejected, image_sample, order_splits, register_converter
from shards.converters.coco_json import (
    CocoIndex,
    annotation_rle,
    checked_images,
    clean_name,
    find_one,
    nonempty,
    read_image,
    stream_coco,
)
from shards.format import Sample, Target
from shards.keys import make_key
from shards.rle import merge_rles

log = logging.getLogger(__name__)
# Spelling fixes of part names as released (PartImageNet writes "Tier" for tyre).
PART_FIXES = {"tier": "tire"}


def part_of(cat: dict) -> tuple[str, str] | None:
    """(object, part) names of a part category, or None for an object category.

    "bicycle:wheel" -> ("bicycle", "wheel"); "Quadruped Head" with supercategory
    "Quadruped" -> ("quadruped", "head").
    """
    name = str(cat.get("name", ""))
    if ":" in name:
        obj, part = name.split(":", 1)
    else:
        sup = str(cat.get("supercategory") or "")
        if not sup or not name.lower().startswith(sup.lower() + " "):
            return None
        obj, part = sup, name[len(sup) + 1 :]
    part = clean_name(part)
    return clean_name(obj), PART_FIXES.get(part, part)


def parts_sample(path: Path, image: dict, anns: list[dict], cats: dict, source: str) -> Sample:
    """One image: a part target per (object, part) pair and an object target per object category."""
    stored = read_image(path.parent, image, path)
    parts: dict[tuple[str, str], list] = defaultdict(list)
    objects: dict[int, list] = defaultdict(list)
    skip = set(image.get("not_exhaustive_category_ids") or [])
    for ann in anns:
        rle = annotation_rle(ann, image)
        if not nonempty(rle):
            continue
        pair = part_of(cats[ann["category_id"]])
        if pair:
            parts[pair].append((ann, rle))
        elif ann["category_id"] not in skip:
            objects[ann["category_id"]].append((ann, rle))
    targets = []
    for (obj, part), items in sorted(parts.items()):
        targets.append(
            Target(
                [f"the {part} of the {obj}"],
                merge_rles([r for _, r in items]),
                "part",
                "part",
                source,
                provenance={
                    "object": obj,
                    "part": part,
                    "ann_ids": [a["id"] for a, _ in items],
                    "obj_ann_ids": sorted({a["obj_ann_id"] for a, _ in items if "obj_ann_id" in a}),
                },
            )
        )
    for cat_id in sorted(objects):
        items = objects[cat_id]
        targets.append(
            Target(
                [f"all {clean_name(cats[cat_id]['name'])}"],
                merge_rles([r for _, r in items]),
                "semantic",
                "class",
                source,
                provenance={"category_id": cat_id, "ann_ids": [a["id"] for a, _ in items]},
            )
        )
    if not targets:
        raise ConvertError("no non-empty mask in this image")
    name = image["file_name"]
    return image_sample(source, name, str(image["id"]), stored, targets)


def _part_items(idx: CocoIndex, source: str, locate: Callable[[dict], Path]) -> Iterator[Item | Rejected]:
    for entry in checked_images(idx):
        if isinstance(entry, Rejected):
            yield entry
            continue
        image, good = entry
        yield Item(
            make_key(source, image["file_name"]),
            image["file_name"],
            lambda im=image, a=good: parts_sample(locate(im), im, a, idx.cats, source),
        )


def paco_splits(src: Path, subset: str = "lvis", annotations: str | None = None, **_: object) -> list[str] | None:
    """The <split> of every ``paco_<subset>_v1_<split>.json`` under src/annotations or src; None
    with an explicit annotation file."""
    if annotations:
        return None
    head = f"paco_{subset}_v1_"
    return order_splits(
        p.stem[len(head) :] for d in (src / "annotations", src) for p in d.glob(f"{head}*.json") if p.is_file()
    )


def partimagenet_splits(src: Path, annotations: str | None = None, **_: object) -> list[str] | None:
    """train / val / test, for each ``<split>.json`` present; None with an explicit annotation file."""
    if annotations:
        return None
    return [
        s
        for s in ("train", "val", "test")
        if any((src / p).is_file() for p in (f"{s}.json", f"annotations/{s}.json", f"annotations/{s}/{s}.json"))
    ]


@register_converter("paco", splits=paco_splits)
def convert_paco(
    src: Path,
    split: str = "train",
    subset: str = "lvis",
    images: str | None = None,
    annotations: str | None = None,
    name: str | None = None,
) -> Iterator[Item | Rejected]:
    """PACO -> part targets "the <part> of the <object>" and object targets "all <object>".

    Args:
        src: the paco folder (with ``annotations/``).
        split: train, val or test: selects ``paco_<subset>_v1_<split>.json``.
        subset: "lvis" (COCO images) or "ego4d" (PACO frames).
        images: folder image file_names are relative to; default ``src/../coco`` for lvis, else
            ``src/images``.
        annotations: explicit JSON file, instead of the search by subset and split.
        name: source name; default ``paco:<json stem>``.
    """
    if annotations:
        ann_file = Path(annotations)
        if not ann_file.is_file():
            raise FileNotFoundError(f"annotation file {ann_file} does not exist")
    else:
        ann_file = find_one(
            src,
            [
                f"annotations/paco_{subset}_v1_{split}.json",
                f"paco_{subset}_v1_{split}.json",
                f"annotations/paco_{subset}_*{split}.json",
                f"paco_{subset}_*{split}.json",
            ],
            f"paco_{subset}_v1_{split}.json",
        )
    idx = stream_coco(ann_file)
    if images:
        root = Path(images)
    else:
        root = src.parent / "coco" if subset == "lvis" and (src.parent / "coco").is_dir() else src / "images"
    yield from _part_items(idx, name or f"paco:{ann_file.stem}", lambda im: root / im["file_name"])


@register_converter("partimagenet", splits=partimagenet_splits)
def convert_partimagenet(
    src: Path, split: str = "train", images: str | None = None, annotations: str | None = None, name: str | None = None
) -> Iterator[Item | Rejected]:
    """PartImageNet -> part targets "the <part> of the <supercategory>".

    Args:
        src: the PartImageNet folder.
        split: train, val or test: selects ``<split>.json``.
        images: the split's image folder; default ``src/<split>``, else ``src/images/<split>``.
            Files are found as ``<folder>/<wnid>/<file_name>`` or ``<folder>/<file_name>``.
        annotations: explicit JSON file, instead of ``<split>.json``.
        name: source name; default "partimagenet".
    """
    ann_file = (
        Path(annotations)
        if annotations
        else find_one(
            src, [f"{split}.json", f"annotations/{split}.json", f"annotations/{split}/{split}.json"], f"{split}.json"
        )
    )
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} does not exist")
    idx = stream_coco(ann_file)
    if images:
        root = Path(images)
    else:
        root = next((c for c in (src / split, src / "images" / split) if c.is_dir()), src / split)

    def locate(image: dict) -> Path:
        flat = root / image["file_name"]
        by_wnid = root / image["file_name"].split("_")[0] / image["file_name"]
        return by_wnid if by_wnid.is_file() or not flat.is_file() else flat

    yield from _part_items(idx, name or "partimagenet", locate)
