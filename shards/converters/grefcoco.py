"""gRefCOCO (generalised referring expressions) in ReLA's layout (github.com/henghuiding/ReLA).

Layout, as ReLA's ``G_REFER(data_root, 'grefcoco', 'unc')`` reads it::

    data_root/grefcoco/grefs(unc).json     (or grefs(unc).p, read with the restricted unpickler)
    data_root/grefcoco/instances.json
    data_root/images/train2014/COCO_train2014_*.jpg

A gRef is like a refer ref, except that ``ann_id`` and ``category_id`` are lists: one id for
a single target, several for a multi-target expression ("the two people on the left"), and
``[-1]`` with ``no_target: true`` for an expression that matches nothing in the image.
Targets: task "gres"; mask = union of the listed annotations (crowd annotations are left
out, as ReLA's loader does), granularity "group" for several and "instance" for one; a
no-target expression gets mask null (granularity "instance"). Splits: train, val, testA,
testB, matched exactly as G_REFER does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shards.converters import ConvertError, Item, Rejected, image_sample, order_splits, register_converter
from shards.converters.coco_json import annotation_problem, annotation_rle, load_json, read_image
from shards.converters.refer import default_images_dir, find_refs_file, id_order, load_refs, select_split
from shards.format import Sample, Target
from shards.keys import make_key
from shards.rle import merge_rles, rle_area

log = logging.getLogger(__name__)
NO_TARGET_IDS = (-1, None)


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def load_grefs(src: Path, split_by: str | None) -> tuple[list[dict], str]:
    """Reads ``grefs(<split_by>).json`` (or the ``.p`` pickle, restricted); returns refs and split_by."""
    if split_by is None:
        found = sorted(src.glob("grefs(*).json")) or sorted(src.glob("grefs(*).p"))
        if len(found) != 1:
            raise (FileNotFoundError if not found else ConvertError)(
                f"expected one grefs(<split_by>).json under {src}, found {[p.name for p in found]}"
            )
        split_by = found[0].name[len("grefs(") : found[0].name.index(")")]
    path = src / f"grefs({split_by}).json"
    if path.is_file():
        refs = load_json(path)
        if not isinstance(refs, list):
            raise ConvertError(f"{path.name}: expected a list of refs")
        return refs, split_by
    path, split_by = find_refs_file(src, split_by, stem="grefs")
    return load_refs(path), split_by


def is_no_target(ref: dict) -> bool:
    """True for a no-target expression: ``no_target`` set, or ``ann_id`` that is only -1."""
    ids = _as_list(ref.get("ann_id"))
    return bool(ref.get("no_target")) or all(i in NO_TARGET_IDS for i in ids)


def grefcoco_sample(
    images_dir: Path, image: dict, targets: list[tuple[dict, list[dict], list[str]]], cats: dict, source: str
) -> Sample:
    """Reads one image and turns its (gref, annotations, texts) triples into a Sample."""
    stored = read_image(images_dir, image)
    out = []
    for ref, anns, texts in targets:
        prov = {
            "ref_id": ref.get("ref_id"),
            "ann_ids": [a["id"] for a in anns],
            "categories": sorted({cats[a["category_id"]].get("name") for a in anns}),
        }
        if not anns:
            out.append(Target(texts, None, "gres", "instance", source, provenance={**prov, "no_target": True}))
            continue
        rle = merge_rles([annotation_rle(a, image) for a in anns])
        if rle_area(rle) == 0:
            log.warning("gref %s: the union of its annotations is empty; dropped", ref.get("ref_id"))
            continue
        out.append(Target(texts, rle, "gres", "group" if len(anns) > 1 else "instance", source, provenance=prov))
    if not out:
        raise ConvertError("every referred mask of this image is empty")
    return image_sample(source, image["file_name"], str(image["id"]), stored, out)


def grefcoco_splits(src: Path, split_by: str | None = None, **_: Any) -> list[str]:
    """The split names of the grefs file (train, val, testA, testB)."""
    refs, _ = load_grefs(src, split_by)
    return order_splits(str(r.get("split")) for r in refs if isinstance(r, dict))


@register_converter("grefcoco", splits=grefcoco_splits)
def convert_grefcoco(
    src: Path, split: str = "train", split_by: str | None = None, images: str | None = None, name: str | None = None
) -> Iterator[Item | Rejected]:
    """gRefCOCO (ReLA layout) -> "gres" targets: single, multi-target (union) and no-target.

    Args:
        src: the folder holding ``grefs(<split_by>).json`` and ``instances.json``.
        split: train, val, testA or testB.
        split_by: default the only grefs file present (unc).
        images: COCO train2014 folder; default ReLA's ``src/../images/train2014``, then refer's
            ``src/../images/mscoco/images/train2014``, else ``src/images``.
        name: source name on every target; default ``<src folder>(<split_by>)``.
    """
    all_refs, split_by = load_grefs(src, split_by)
    refs, idx = select_split(src, all_refs, split, exact=True)  # empties all_refs
    images_dir = (
        Path(images)
        if images
        else default_images_dir(
            src, [src.parent / "images" / "train2014", src.parent / "images" / "mscoco" / "images" / "train2014"]
        )
    )
    source = name or f"{src.name}({split_by})"
    by_image: dict[Any, list[tuple[dict, list[Any], list[str]]]] = defaultdict(list)  # ref, ann ids, texts
    for ref in sorted(refs, key=lambda r: (id_order(r["image_id"]), id_order(r["ref_id"]))):
        label = f"gref {ref.get('ref_id')}"
        image = idx.images.get(ref.get("image_id"))
        if image is None:
            yield Rejected(label, f"image {ref.get('image_id')} is not in instances.json")
            continue
        texts = ref["texts"]
        if not texts:
            yield Rejected(label, "gref has no non-empty sentence")
            continue
        ids = [i for i in dict.fromkeys(_as_list(ref.get("ann_id"))) if i not in NO_TARGET_IDS]
        if is_no_target(ref):
            if ids:
                yield Rejected(label, f"marked no_target but lists annotations {ids}")
            else:
                by_image[image["id"]].append((ref, [], texts))
            continue
        anns, problem = _target_anns(ids, image, idx)
        if problem or not anns:
            yield Rejected(label, problem or "every listed annotation is a crowd region")
            continue
        by_image[image["id"]].append((ref, anns, texts))
    for image_id, targets in by_image.items():
        image = idx.images[image_id]
        yield Item(
            make_key(source, image["file_name"]),
            image["file_name"],
            lambda im=image, ts=targets: grefcoco_sample(
                images_dir, im, [(r, [idx.anns[a] for a in ids], t) for r, ids, t in ts], idx.cats, source
            ),
        )


def _target_anns(ids: list[Any], image: dict, idx: Any) -> tuple[list[Any], str | None]:
    """The ids of a gref's non-crowd annotations, or the first problem with one of them
    (missing, on another image, or refused by ``annotation_problem``)."""
    anns = []
    for i in ids:
        ann = idx.anns.get(i)
        if ann is None:
            return anns, f"annotation {i} is not in instances.json"
        if ann.get("image_id") != image["id"]:
            return anns, f"annotation {i} belongs to image {ann.get('image_id')}, the gref to {image['id']}"
        problem = annotation_problem(ann, image, idx.cats)
        if problem:
            return anns, problem
        if not ann.get("iscrowd"):
            anns.append(ann["id"])  # read again when the image is built
    return anns, None
