"""Any split -> one COCO JSON file, so that pycocotools, FiftyOne and CVAT open what we make.

    {"images": [...], "annotations": [...], "categories": [{"id": 1, "name": "object"}],
     "refs": [...], "info": {...}}

- ``images``: one per sample (``file_name`` KEY.jpg|png as in the shard, width, height, and the
  sample key and sha256 as ``unilseg_key`` / ``sha256``);
- ``annotations``: one per target with a mask, its mask as COCO RLE (``segmentation``; ``area``
  and ``bbox`` from pycocotools), ``iscrowd`` 0, one category (targets are class-agnostic), and
  ``unilseg`` (target index, task, granularity, source, scores);
- ``refs``: refer-style records (RefCOCO's refs(unc).p, as JSON): every target's texts as
  ``sentences`` of a ref pointing at its annotation; a no-target expression has ``ann_id`` -1
  (gRefCOCO's convention) and no annotation.

The images themselves stay in the shards: ``file_name`` names them as the shard does.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pycocotools import mask as mask_utils

from shards import storage
from shards.manifest import read_dataset_json
from shards.reader import ShardReader

CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


def _ext(data: bytes) -> str:
    return "jpg" if data[:2] == b"\xff\xd8" else "png"


def _annotation(ann_id: int, image_id: int, index: int, t) -> dict[str, Any]:
    """The COCO annotation of a target with a mask (area and bbox from pycocotools)."""
    rle = {"size": list(t.mask["size"]), "counts": t.mask["counts"]}
    coco_rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY["id"],
        "segmentation": rle,
        "area": int(mask_utils.area(coco_rle)),
        "bbox": [float(x) for x in mask_utils.toBbox(coco_rle)],
        "iscrowd": 0,
        "unilseg": {
            "target": index,
            "task": t.task,
            "granularity": t.granularity,
            "source": t.source,
            "scores": t.scores,
        },
    }


def _ref(ref_id: int, ann_id: int, image_id: int, first_sent: int, t, split: str) -> dict[str, Any]:
    """A refer-style record: the target's texts as sentences of one ref (ann_id -1: no target)."""
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY["id"],
        "split": split,
        "sentences": [{"sent_id": first_sent + n, "sent": text, "raw": text} for n, text in enumerate(t.texts)],
        "sent_ids": list(range(first_sent, first_sent + len(t.texts))),
        "no_target": t.mask is None,
    }


def coco_document(split_dir: str | os.PathLike) -> dict[str, Any]:
    """The COCO document of a split (every shard read once, images not decoded).

    Raises:
        FileNotFoundError: not a split (no dataset.json).
    """
    info = read_dataset_json(split_dir)
    if not info:
        raise FileNotFoundError(f"{split_dir} has no dataset.json: not a shard split")
    images, annotations, refs, sentences = [], [], [], 0
    for image_id, s in enumerate(ShardReader(split_dir).samples(decode_images=False), start=1):
        img = s.image
        images.append(
            {
                "id": image_id,
                "file_name": f"{s.key}.{_ext(s.image_bytes)}",
                "width": img.width,
                "height": img.height,
                "unilseg_key": s.key,
                "sha256": img.sha256,
                "source": img.source,
            }
        )
        for i, t in enumerate(s.targets):
            ann_id = -1
            if t.mask is not None:
                ann_id = len(annotations) + 1
                annotations.append(_annotation(ann_id, image_id, i, t))
            refs.append(_ref(len(refs) + 1, ann_id, image_id, sentences, t, storage.name(split_dir)))
            sentences += len(t.texts)
    meta = {"description": f"unilseg split {split_dir}", "schema_version": info.get("schema_version")}
    return {"info": meta, "images": images, "annotations": annotations, "categories": [CATEGORY], "refs": refs}


def export_coco(split_dir: str | os.PathLike, out: str | os.PathLike) -> dict[str, int]:
    """Writes the split's COCO JSON to ``out`` (local path or URL; appears complete or not at
    all); returns its counts of images, annotations and refs."""
    doc = coco_document(split_dir)
    storage.write_bytes(out, json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    return {k: len(doc[k]) for k in ("images", "annotations", "refs")}
