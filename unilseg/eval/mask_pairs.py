"""Prediction / ground-truth pairs for the metrics: validated, then counted per sample.

Every metric takes `preds` and `gts`, two equal-length sequences of 2-D arrays, one pair
per (image, expression) sample, both at the same resolution (the ground truth's original
resolution by convention; nothing here resizes). A prediction is a bool mask, an integer
0/1 mask, or a float map in [0, 1] that is binarised as `pred > threshold`, strictly, as
CRIS/UniLSeg do with `pred > 0.35` and as a two-class argmax (ReLA, LAVT) does at 0.5.
A ground truth is a bool (or integer 0/1) mask, or None for a no-target expression.
Results are dicts of Python floats; IoU-like values are fractions in [0, 1], not percent.

Samples may differ in resolution from each other; a prediction and its ground truth may
not. All counting is vectorised per sample (`np.count_nonzero`): BENCHMARKS.md, "Evaluation
metrics", has the cost against the least work any scorer must do.

The metrics built on these: `metrics_referring.py` (RefCOCO, gRefCOCO, RefCOCOm),
`metrics_semantic.py` ("all <class>" samples), `metrics_sod.py` (SOD/COD maps);
`metrics_conventions.py` says in a sentence which convention each number follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

# ----------------------------------------------------------------------------- validation


def check_lengths(preds: Sequence[Any], gts: Sequence[Any], *others: tuple[str, Sequence[Any]]) -> int:
    """Returns the number of samples; raises ValueError on empty or unequal inputs."""
    n = len(preds)
    if len(gts) != n:
        raise ValueError(f"preds and gts differ in length: {n} predictions, {len(gts)} ground truths")
    for name, seq in others:
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries but there are {n} samples")
    if n == 0:
        raise ValueError("no samples: preds and gts are empty lists; there is nothing to evaluate")
    return n


def as_2d(arr: Any, what: str, i: int) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ValueError(f"sample {i}: {what} must be a 2-D (H, W) array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"sample {i}: {what} has no pixels (shape {a.shape})")
    return a


def _int_mask(a: np.ndarray, what: str, i: int) -> np.ndarray:
    """An integer array holding only 0/1 as a bool mask (pycocotools decodes to uint8)."""
    if a.min() < 0 or a.max() > 1:
        raise ValueError(
            f"sample {i}: integer {what} must hold only 0 and 1, found values in "
            f"[{a.min()}, {a.max()}]; binarise it first (e.g. arr > 127)"
        )
    return a.astype(bool)


def float_map(a: np.ndarray, i: int) -> np.ndarray:
    """Validates a float prediction map: no NaN, values in [0, 1]."""
    lo, hi = a.min(), a.max()  # NaN propagates through min/max, so one pass checks both
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"sample {i}: prediction contains NaN")
    if lo < 0 or hi > 1:
        raise ValueError(
            f"sample {i}: float prediction must lie in [0, 1] (probabilities, not logits), found values in [{lo}, {hi}]"
        )
    return a


def pred_mask(arr: Any, i: int, threshold: float) -> np.ndarray:
    """A prediction as a bool mask (H, W): bool as is, 0/1 integers, floats > threshold."""
    a = as_2d(arr, "prediction", i)
    if a.dtype == np.bool_:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return float_map(a, i) > threshold
    if np.issubdtype(a.dtype, np.integer):
        return _int_mask(a, "prediction", i)
    raise ValueError(f"sample {i}: prediction dtype {a.dtype} is not bool, integer 0/1 or float")


def gt_mask(arr: Any, i: int, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """A ground truth as a bool mask of `shape`, or None for a no-target expression."""
    if arr is None:
        return None
    a = as_2d(arr, "ground truth", i)
    if a.shape != shape:
        raise ValueError(
            f"sample {i}: prediction shape {shape} differs from ground truth shape "
            f"{a.shape}; bring predictions to the ground truth's resolution first "
            "(metrics never resize)"
        )
    if a.dtype == np.bool_:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return _int_mask(a, "ground truth", i)
    raise ValueError(f"sample {i}: ground truth dtype {a.dtype} is not bool or integer 0/1")


# ----------------------------------------------------------------------------- counting


def overlaps(preds: Sequence[Any], gts: Sequence[Any], threshold: float) -> dict[str, np.ndarray]:
    """Per-sample pixel counts, each an int64 array of shape (N,).

    Returns:
        dict with `inter` (|P & G|), `union` (|P | G|), `pred_area` (|P|), `gt_area` (|G|)
        and `no_target` (bool (N,): gt is None or has no foreground pixel).
    """
    n = check_lengths(preds, gts)
    inter = np.zeros(n, np.int64)
    pred_area = np.zeros(n, np.int64)
    gt_area = np.zeros(n, np.int64)
    for i in range(n):
        p = pred_mask(preds[i], i, threshold)
        g = gt_mask(gts[i], i, p.shape)
        pred_area[i] = np.count_nonzero(p)
        if g is not None:
            gt_area[i] = np.count_nonzero(g)
            # |P & G| needs one pass; |P | G| then follows from the areas without another
            inter[i] = np.count_nonzero(np.logical_and(p, g)) if pred_area[i] and gt_area[i] else 0
    return {
        "inter": inter,
        "union": pred_area + gt_area - inter,
        "pred_area": pred_area,
        "gt_area": gt_area,
        "no_target": gt_area == 0,
    }


def iou_of(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per-sample IoU (N,) float64; a sample with union 0 (both masks empty) scores 1."""
    iou = np.ones(inter.shape, np.float64)
    nz = union > 0
    iou[nz] = inter[nz] / union[nz]
    return iou


def ratio(num: float, den: float, empty: float) -> float:
    return float(num / den) if den > 0 else float(empty)


def mean_or_nan(x: np.ndarray) -> float:
    """Mean of a possibly empty selection; NaN says 'undefined' rather than a made-up 0."""
    return float(x.mean()) if x.size else float("nan")
