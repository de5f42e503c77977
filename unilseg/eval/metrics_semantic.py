"""Semantic segmentation metrics from "all <class>" expressions: per-class IoU and mIoU,
intersections and unions summed per class (inputs as `mask_pairs` describes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unilseg.eval.mask_pairs import check_lengths, mean_or_nan, overlaps


def semantic_per_class_iou(
    preds: Sequence[Any], gts: Sequence[Any], classes: Sequence[str], *, threshold: float = 0.5
) -> dict[str, float]:
    """Per-class IoU of semantic segmentation posed as "all <class>" expressions.

    Intersections and unions are summed per class over its samples, then divided, as
    semantic-segmentation benchmarks do with a confusion matrix.

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None (the class is absent).
        classes: N class names, the class each sample asks for.
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        dict: class name -> I_c / U_c, in first-seen order, for classes with U_c > 0 only
        (a class never present nor predicted has no defined IoU).
    """
    check_lengths(preds, gts, ("classes", classes))
    c = overlaps(preds, gts, threshold)
    inter: dict[str, int] = {}
    union: dict[str, int] = {}
    for name, i_, u_ in zip(classes, c["inter"].tolist(), c["union"].tolist()):
        inter[name] = inter.get(name, 0) + i_
        union[name] = union.get(name, 0) + u_
    return {k: inter[k] / union[k] for k in union if union[k] > 0}


def semantic_metrics(
    preds: Sequence[Any], gts: Sequence[Any], classes: Sequence[str], *, threshold: float = 0.5
) -> dict[str, float]:
    """Semantic segmentation mIoU from "all <class>" samples.

    Args:
        preds, gts, classes, threshold: as `semantic_per_class_iou`.

    Returns:
        dict: `mIoU` (mean of per-class IoU over classes with U_c > 0; NaN if none),
        `n_classes` (number of such classes), `n` (samples), all floats.
    """
    per_class = semantic_per_class_iou(preds, gts, classes, threshold=threshold)
    vals = np.array(list(per_class.values()), np.float64)
    return {"mIoU": mean_or_nan(vals), "n_classes": float(vals.size), "n": float(len(preds))}
