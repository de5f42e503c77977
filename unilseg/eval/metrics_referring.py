"""Referring segmentation metrics: RefCOCO/+/g (oIoU, mIoU, Prec@X), gRefCOCO (GRES:
gIoU, cIoU, N-acc, T-acc) and RefCOCOm's part-level mIoU, as pure functions over lists of
masks (inputs as `mask_pairs` describes; conventions in `metrics_conventions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unilseg.eval.mask_pairs import check_lengths, iou_of, mean_or_nan, overlaps, ratio

PREC_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def per_sample_iou(preds: Sequence[Any], gts: Sequence[Any], *, threshold: float = 0.5) -> np.ndarray:
    """Per-sample IoU, for reports that list worst cases.

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None (treated as an empty mask).
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        np.ndarray: (N,) float64 IoU; 1.0 where prediction and ground truth are both empty.
    """
    c = overlaps(preds, gts, threshold)
    return iou_of(c["inter"], c["union"])


def referring_metrics(preds: Sequence[Any], gts: Sequence[Any], *, threshold: float = 0.5) -> dict[str, float]:
    """Referring segmentation (RefCOCO/+/g): oIoU, mIoU and Prec@X.

    Convention for an empty union (empty prediction on an empty or None ground truth):
    the sample's IoU is 1, and oIoU is 1 when every union is empty.

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None (treated as an empty mask).
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        dict: `oIoU` (sum I / sum U), `mIoU` (mean per-sample IoU), `prec@0.5` ... `prec@0.9`
        (fraction of samples with IoU >= X) and `n` (number of samples), all floats.

    Raises:
        ValueError: empty or unequal-length lists, non-2-D arrays, a prediction whose shape
            differs from its ground truth's, NaN or out-of-range float predictions.
    """
    c = overlaps(preds, gts, threshold)
    iou = iou_of(c["inter"], c["union"])
    out = {"oIoU": ratio(c["inter"].sum(), c["union"].sum(), 1.0), "mIoU": float(iou.mean())}
    for t in PREC_THRESHOLDS:
        out[f"prec@{t}"] = float(np.mean(iou >= t))
    out["n"] = float(iou.size)
    return out


def gres_metrics(preds: Sequence[Any], gts: Sequence[Any], *, threshold: float = 0.5) -> dict[str, float]:
    """Generalised referring segmentation (gRefCOCO): gIoU, cIoU, N-acc, T-acc as in ReLA.

    A sample is no-target when its ground truth is None or has no foreground pixel. A
    prediction is "empty" when its mask has zero foreground pixels; ReLA instead reads a
    separate no-target classifier head, which our model does not have. Definitions:

    - gIoU: mean per-sample IoU; a no-target sample scores 1 if predicted empty, else 0
      (this is the IoU with the empty-union convention, since I = 0 there).
    - cIoU: cumulative I / cumulative U over all samples, so a non-empty prediction on a
      no-target sample adds its area to U (as in ReLA). 1.0 if every union is empty.
    - N-acc: no-target samples predicted empty / no-target samples (NaN if there are none).
    - T-acc: target samples predicted non-empty / target samples (NaN if there are none).

    These follow the GRES paper; an early release of ReLA's evaluator added 1 to the
    accuracy denominators, which we do not.

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None for a no-target expression.
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        dict: `gIoU`, `cIoU`, `N-acc`, `T-acc`, `n`, `n_no_target` (floats).

    Raises:
        ValueError: as `referring_metrics`.
    """
    c = overlaps(preds, gts, threshold)
    iou = iou_of(c["inter"], c["union"])
    nt = c["no_target"]
    pred_empty = c["pred_area"] == 0
    return {
        "gIoU": float(iou.mean()),
        "cIoU": ratio(c["inter"].sum(), c["union"].sum(), 1.0),
        "N-acc": mean_or_nan(pred_empty[nt]),
        "T-acc": mean_or_nan(~pred_empty[~nt]),
        "n": float(iou.size),
        "n_no_target": float(nt.sum()),
    }


def part_metrics(
    preds: Sequence[Any], gts: Sequence[Any], kinds: Sequence[str], *, threshold: float = 0.5
) -> dict[str, float]:
    """Part-level referring segmentation, RefCOCOm style (MRES paper).

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None (treated as an empty mask).
        kinds: N strings, "part" or "object", the granularity of each expression.
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        dict: `mIoU_part` (mean IoU over part samples, NaN if none), `mIoU_object_part`
        (mean IoU over all samples), `n`, `n_part` (floats). Empty union scores IoU 1.

    Raises:
        ValueError: as `referring_metrics`, or `kinds` of another length or value.
    """
    check_lengths(preds, gts, ("kinds", kinds))
    bad = sorted({k for k in kinds if k not in ("part", "object")}, key=str)
    if bad:
        raise ValueError(f"kinds must be 'part' or 'object', found {bad}")
    iou = per_sample_iou(preds, gts, threshold=threshold)
    is_part = np.array([k == "part" for k in kinds], bool)
    return {
        "mIoU_part": mean_or_nan(iou[is_part]),
        "mIoU_object_part": float(iou.mean()),
        "n": float(iou.size),
        "n_part": float(is_part.sum()),
    }
