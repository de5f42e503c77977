"""Class-agnostic mask recall with pycocotools' COCOeval, and each proposal's best IoU.

Recall is COCO's and SAM's: COCOeval on segmentation masks with categories ignored
(``params.useCats = 0``), so any proposal may match any ground-truth mask; each proposal
matches at most one mask, greedily by score, per IoU threshold (0.50:0.05:0.95). Keys in
``metrics["masks"]``:

    AR@1, AR@10, AR@100      recall averaged over the 10 IoU thresholds, with the top 1 / 10 /
                             100 proposals per image by score (COCO's AR)
    recall@0.5, recall@0.75  recall at one IoU threshold, top 100 proposals
    AR@100.small|medium|large  AR@100 over masks of COCO's area ranges (< 32^2, 32^2..96^2,
                             > 96^2 pixels): COCOeval's own areaRng
    AR@100.object|part|stuff, recall@0.5.object|part|stuff
                             COCOeval run again on the ground truth of one granularity group
                             alone (every proposal still competes); NaN when the split has
                             no mask of that group
    precision@0.5            the share of proposals whose best IoU with any ground-truth mask
                             of their image is >= 0.5 (not one-to-one: two proposals on one
                             mask both count); pycocotools' maskUtils.iou
    recall_curve             recall at each of the 10 thresholds (top 100), all masks
    n_images, n_truth, n_proposals

With no proposals at all every recall is 0 (pycocotools cannot load an empty result list).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotation_engine.quality.coco import GROUPS, ImageRecord, ground_truth

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
MAX_DETS = (1, 10, 100)
SIZES = ("small", "medium", "large")  # COCOeval's areaRng labels 1..3 (0 is "all")
MATCH_IOU = 0.5


def coco_eval(gt: dict[str, Any], res: list[dict[str, Any]]) -> np.ndarray | None:
    """COCOeval (segm, useCats = 0) of results against instances; its ``recall`` array.

    Returns:
        np.ndarray | None: (T=10, K=1, A=4, M=3) recall, -1 where there is no ground truth;
        None when there are no results.
    """
    if not res:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(res))
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
    return ev.eval["recall"]


def _mean(values: np.ndarray) -> float:
    """COCOeval.summarize's average: over entries that are not -1; NaN if none."""
    v = values[values > -1]
    return float(v.mean()) if v.size else math.nan


def summarize(recall: np.ndarray | None, has_truth: bool) -> dict[str, float]:
    """AR@1/10/100, recall@0.5/0.75 and AR@100 by size from a recall array (None: no results)."""
    if recall is None:  # no proposal finds anything
        zero = 0.0 if has_truth else math.nan
        out = {f"AR@{m}": zero for m in MAX_DETS} | {"recall@0.5": zero, "recall@0.75": zero}
        return out | {f"AR@100.{s}": zero for s in SIZES} | {"recall_curve": [zero] * len(IOU_THRESHOLDS)}
    out = {f"AR@{m}": _mean(recall[:, 0, 0, i]) for i, m in enumerate(MAX_DETS)}
    out["recall@0.5"] = _mean(recall[0, 0, 0, 2:3])
    out["recall@0.75"] = _mean(recall[5, 0, 0, 2:3])
    for a, s in enumerate(SIZES, start=1):
        out[f"AR@100.{s}"] = _mean(recall[:, 0, a, 2])
    out["recall_curve"] = [_mean(recall[t, 0, 0, 2:3]) for t in range(len(IOU_THRESHOLDS))]
    return out


def best_matches(images: Sequence[ImageRecord]) -> list[list[tuple[float, int | None]]]:
    """Per image, per proposal: (best IoU with any ground-truth mask, index of that mask or None)."""
    out = []
    for im in images:
        if not im.proposals or not im.truth:
            out.append([(0.0, None)] * len(im.proposals))
            continue
        dts = [{"size": list(p.rle["size"]), "counts": p.rle["counts"]} for p in im.proposals]
        gts = [{"size": list(t.rle["size"]), "counts": t.rle["counts"]} for t in im.truth]
        ious = np.asarray(mask_utils.iou(dts, gts, [0] * len(gts)), np.float64).reshape(len(dts), len(gts))
        best = ious.argmax(1)
        out.append([(float(ious[i, j]), int(j)) for i, j in enumerate(best)])
    return out


def mask_metrics(
    images: Sequence[ImageRecord], res: list[dict[str, Any]], matches: list[list[tuple[float, int | None]]]
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """metrics["masks"] (keys in the module docstring) and the recall curve of each group.

    Args:
        images: the split's images with their proposals.
        res: the proposals as COCO results (``coco.results(images, ...)``).
        matches: ``best_matches(images)``.
    """
    gt = ground_truth(images)
    n_truth = len(gt["annotations"])
    m: dict[str, Any] = summarize(coco_eval(gt, res), n_truth > 0)
    curves = {"all": m.pop("recall_curve")}
    for g in GROUPS:
        sub = ground_truth(images, groups=[g])
        if not sub["annotations"]:
            m[f"AR@100.{g}"] = m[f"recall@0.5.{g}"] = math.nan
            continue
        s = summarize(coco_eval(sub, res), True)
        m[f"AR@100.{g}"], m[f"recall@0.5.{g}"] = s["AR@100"], s["recall@0.5"]
        curves[g] = s["recall_curve"]
    best = [iou for per_image in matches for iou, _ in per_image]
    m["precision@0.5"] = float(np.mean([b >= MATCH_IOU for b in best])) if best else math.nan
    m.update(n_images=len(images), n_truth=n_truth, n_proposals=len(best))
    m["recall_curve"] = curves["all"]
    m["iou_thresholds"] = list(IOU_THRESHOLDS)
    return m, curves
