"""Ground truth and engine proposals as COCO dicts (pure functions, no I/O).

COCO instances (``ground_truth.json``) hold one category, ``region`` (id 1): recall is
class-agnostic (COCOeval with ``useCats = 0``), so the category is only there because the
format wants one. Each annotation keeps our fields beside COCO's (``texts``, ``task``,
``granularity``, ``group``); pycocotools ignores them. Proposals are COCO results
(``proposals.json``): ``image_id``, ``category_id`` 1, ``segmentation`` (COCO RLE),
``score``, plus ``expression`` (the first text), ``texts`` and ``scores`` (all the engine's).
The same integer ``image_id`` names the same image in both.

Granularity groups (how our targets' fields map onto SAM's object / part / stuff):
    part   granularity ``part``, or task ``part`` (RefCOCOm, PACO, PartImageNet parts)
    stuff  granularity ``class`` or ``scene``, or task ``semantic`` (ADE20K "all <class>")
    object everything else: granularity ``instance`` and ``group`` (RefCOCO, gRefCOCO
           multi-target expressions, salient and camouflaged objects, COCO instances)
A target without a mask (a no-target expression) is no ground truth for recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pycocotools import mask as mask_utils

GROUPS = ("object", "part", "stuff")
CATEGORY = {"id": 1, "name": "region"}


def granularity_group(task: str | None, granularity: str | None) -> str:
    """Our (task, granularity) -> "object", "part" or "stuff" (see the module docstring)."""
    if granularity == "part" or task == "part":
        return "part"
    if granularity in ("class", "scene") or task == "semantic":
        return "stuff"
    return "object"


@dataclass
class Region:
    """One mask on an image: a ground-truth target or an engine proposal.

    Attributes:
        rle (dict): COCO RLE ``{"size": [h, w], "counts": str}``.
        texts (list[str]): its expressions.
        group (str): granularity group (ground truth) or "" (proposals).
        scores (dict[str, float]): the engine's scores (proposals).
        task (str): the target's task.
        granularity (str): the target's granularity.
    """

    rle: dict[str, Any]
    texts: list[str] = field(default_factory=list)
    group: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    task: str = ""
    granularity: str = ""


@dataclass
class ImageRecord:
    """One image of the split with its ground truth and, after the engine ran, its proposals.

    Attributes:
        key (str): the split's sample key.
        image_id (int): COCO image id (1-based, in split order).
        width (int), height (int): pixels.
        sha256 (str): of the stored image bytes (pairs it with the engine's output).
        truth (list[Region]): ground-truth masks.
        proposals (list[Region]): the engine's proposals, in the engine's order.
        quarantined (str | None): why the engine gave nothing for it ("kind: reason"), if so.
    """

    key: str
    image_id: int
    width: int
    height: int
    sha256: str
    truth: list[Region] = field(default_factory=list)
    proposals: list[Region] = field(default_factory=list)
    quarantined: str | None = None


def _bbox_area(rle: dict[str, Any]) -> tuple[list[float], int]:
    coco = {"size": list(rle["size"]), "counts": rle["counts"]}
    return [float(v) for v in mask_utils.toBbox(coco)], int(mask_utils.area(coco))


def ground_truth(images: Sequence[ImageRecord], groups: Sequence[str] | None = None) -> dict[str, Any]:
    """COCO instances of the images' ground truth (only the given granularity groups, if any).

    Every image is listed even when it keeps no annotation, so that a run restricted to a
    group still covers the same images. Annotation ids are 1-based, in image then target order
    (the same ids whatever ``groups`` is).
    """
    anns, ann_id = [], 0
    for im in images:
        for r in im.truth:
            ann_id += 1
            if groups is not None and r.group not in groups:
                continue
            bbox, area = _bbox_area(r.rle)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": im.image_id,
                    "category_id": CATEGORY["id"],
                    "segmentation": {"size": list(r.rle["size"]), "counts": r.rle["counts"]},
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                    "group": r.group,
                    "task": r.task,
                    "granularity": r.granularity,
                    "texts": list(r.texts),
                }
            )
    return {
        "info": {"description": "ground truth of a unilseg split (class-agnostic: one category)"},
        "images": [
            {"id": im.image_id, "file_name": im.key, "width": im.width, "height": im.height, "sha256": im.sha256}
            for im in images
        ],
        "annotations": anns,
        "categories": [dict(CATEGORY)],
    }


def proposal_score(region: Region, rank: int, count: int, score: str | None) -> float:
    """The score COCOeval ranks a proposal by (it keeps the top 1 / 10 / 100 per image).

    ``score`` names one of the engine's scores; None (or a proposal without it) ranks by the
    engine's own order: 1 - rank / count, so the first proposal scores 1.
    """
    if score is not None and score in region.scores:
        return float(region.scores[score])
    return 1.0 - rank / max(count, 1)


def results(images: Sequence[ImageRecord], score: str | None = None) -> list[dict[str, Any]]:
    """The proposals as COCO results, image by image, each in the engine's order."""
    out = []
    for im in images:
        n = len(im.proposals)
        for rank, p in enumerate(im.proposals):
            out.append(
                {
                    "image_id": im.image_id,
                    "category_id": CATEGORY["id"],
                    "segmentation": {"size": list(p.rle["size"]), "counts": p.rle["counts"]},
                    "score": proposal_score(p, rank, n, score),
                    "expression": p.texts[0] if p.texts else "",
                    "texts": list(p.texts),
                    "scores": dict(p.scores),
                }
            )
    return out
