"""Segmentation metrics of the field, as pure functions over lists of masks.

Every function takes `preds` and `gts`, two equal-length sequences of 2-D arrays, one pair
per (image, expression) sample, both at the same resolution (the ground truth's original
resolution by convention; nothing here resizes). A prediction is a bool mask, an integer
0/1 mask, or a float map in [0, 1] that is binarised as `pred > threshold`, strictly, as
CRIS/UniLSeg do with `pred > 0.35` and as a two-class argmax (ReLA, LAVT) does at 0.5.
A ground truth is a bool (or integer 0/1) mask, or None for a no-target expression.
Results are dicts of Python floats; IoU-like values are fractions in [0, 1], not percent.

Samples may differ in resolution from each other; a prediction and its ground truth may
not. All counting is vectorised per sample (`np.count_nonzero`): BENCHMARKS.md, "Evaluation
metrics", has the cost against the least work any scorer must do.

SOD: MAE and S-measure come from pysodmetrics. The max F-measure stays hand-written
(`_f_curve`, same numbers as pysodmetrics' FmeasureV2, tests check): FmeasureV2 took
several times as long (two np.histogram calls over boolean-indexed copies per map), over the
20 % allowed (BENCHMARKS.md, "SOD metrics: pysodmetrics vs hand-written").

`METRIC_CONVENTIONS` states in one sentence which convention each number follows, so a
report can print it next to the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

PREC_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
SOD_BETA2 = 0.3  # beta^2 of the F-measure, weighting precision over recall (Achanta et al.)
SOD_ALPHA = 0.5  # S-measure balance between object and region similarity (Fan et al.)
SOD_LEVELS = 256  # thresholds 0..255 of the 8-bit map for the max F-measure

METRIC_CONVENTIONS: dict[str, str] = {
    "binarisation": "A float prediction is foreground where pred > threshold (0.5 unless "
    "stated), at the ground truth's original resolution; nothing is resized.",
    "oIoU": "Overall IoU: sum over samples of intersections divided by sum of unions (1.0 if every union is empty).",
    "mIoU": "Mean over samples of per-sample IoU, where an empty prediction on an empty "
    "ground truth (union 0) counts IoU = 1.",
    **{
        f"prec@{t}": f"Fraction of samples whose IoU >= {t} (>=, as LAVT/ReLA; CRIS uses >), at original resolution."
        for t in PREC_THRESHOLDS
    },
    "gIoU": "GRES (ReLA): mean per-sample IoU; a no-target sample scores 1 if the predicted "
    "mask is empty and 0 otherwise.",
    "cIoU": "GRES (ReLA): cumulative intersection over cumulative union over all samples, "
    "no-target ones included (1.0 if every union is empty).",
    "N-acc": "GRES: among no-target samples, the fraction whose predicted mask has zero "
    "foreground pixels (ReLA decides emptiness with its no-target head instead).",
    "T-acc": "GRES: among target samples, the fraction whose predicted mask is non-empty.",
    "MAE": "Mean over images of the mean absolute difference between the saliency map "
    "(min-max normalised per image unless normalize=False) and the binary ground truth.",
    "maxF": "Maximum over 256 thresholds of the mean-over-images F-measure with beta^2 = 0.3, "
    "map quantised to 8 bits as pysodmetrics' Fmeasure does.",
    "S-measure": "Structure measure (Fan et al. 2017) with alpha = 0.5, averaged over images, "
    "computed by pysodmetrics.",
    "mIoU_part": "RefCOCOm (MRES): mean per-sample IoU over part-level expressions only.",
    "mIoU_object_part": "RefCOCOm (MRES): mean per-sample IoU over object- and part-level expressions together.",
    "mIoU (semantic)": "Per class, intersections and unions summed over the 'all <class>' "
    "samples; mean of I_c / U_c over classes with U_c > 0.",
}


# ----------------------------------------------------------------------------- validation


def _check_lengths(preds: Sequence[Any], gts: Sequence[Any], *others: tuple[str, Sequence[Any]]) -> int:
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


def _as_2d(arr: Any, what: str, i: int) -> np.ndarray:
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


def _float_map(a: np.ndarray, i: int) -> np.ndarray:
    """Validates a float prediction map: no NaN, values in [0, 1]."""
    lo, hi = a.min(), a.max()  # NaN propagates through min/max, so one pass checks both
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"sample {i}: prediction contains NaN")
    if lo < 0 or hi > 1:
        raise ValueError(
            f"sample {i}: float prediction must lie in [0, 1] (probabilities, not logits), found values in [{lo}, {hi}]"
        )
    return a


def _pred_mask(arr: Any, i: int, threshold: float) -> np.ndarray:
    """A prediction as a bool mask (H, W): bool as is, 0/1 integers, floats > threshold."""
    a = _as_2d(arr, "prediction", i)
    if a.dtype == np.bool_:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return _float_map(a, i) > threshold
    if np.issubdtype(a.dtype, np.integer):
        return _int_mask(a, "prediction", i)
    raise ValueError(f"sample {i}: prediction dtype {a.dtype} is not bool, integer 0/1 or float")


def _gt_mask(arr: Any, i: int, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """A ground truth as a bool mask of `shape`, or None for a no-target expression."""
    if arr is None:
        return None
    a = _as_2d(arr, "ground truth", i)
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


def _overlaps(preds: Sequence[Any], gts: Sequence[Any], threshold: float) -> dict[str, np.ndarray]:
    """Per-sample pixel counts, each an int64 array of shape (N,).

    Returns:
        dict with `inter` (|P & G|), `union` (|P | G|), `pred_area` (|P|), `gt_area` (|G|)
        and `no_target` (bool (N,): gt is None or has no foreground pixel).
    """
    n = _check_lengths(preds, gts)
    inter = np.zeros(n, np.int64)
    pred_area = np.zeros(n, np.int64)
    gt_area = np.zeros(n, np.int64)
    for i in range(n):
        p = _pred_mask(preds[i], i, threshold)
        g = _gt_mask(gts[i], i, p.shape)
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


def _iou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per-sample IoU (N,) float64; a sample with union 0 (both masks empty) scores 1."""
    iou = np.ones(inter.shape, np.float64)
    nz = union > 0
    iou[nz] = inter[nz] / union[nz]
    return iou


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num / den) if den > 0 else float(empty)


def _mean_or_nan(x: np.ndarray) -> float:
    """Mean of a possibly empty selection; NaN says 'undefined' rather than a made-up 0."""
    return float(x.mean()) if x.size else float("nan")


# ----------------------------------------------------------------------------- metrics


def per_sample_iou(preds: Sequence[Any], gts: Sequence[Any], *, threshold: float = 0.5) -> np.ndarray:
    """Per-sample IoU, for reports that list worst cases.

    Args:
        preds: N predictions, each (H_i, W_i) bool or float in [0, 1].
        gts: N ground truths, each (H_i, W_i) bool, or None (treated as an empty mask).
        threshold: a float prediction is foreground where pred > threshold.

    Returns:
        np.ndarray: (N,) float64 IoU; 1.0 where prediction and ground truth are both empty.
    """
    c = _overlaps(preds, gts, threshold)
    return _iou(c["inter"], c["union"])


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
    c = _overlaps(preds, gts, threshold)
    iou = _iou(c["inter"], c["union"])
    out = {"oIoU": _ratio(c["inter"].sum(), c["union"].sum(), 1.0), "mIoU": float(iou.mean())}
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
    c = _overlaps(preds, gts, threshold)
    iou = _iou(c["inter"], c["union"])
    nt = c["no_target"]
    pred_empty = c["pred_area"] == 0
    return {
        "gIoU": float(iou.mean()),
        "cIoU": _ratio(c["inter"].sum(), c["union"].sum(), 1.0),
        "N-acc": _mean_or_nan(pred_empty[nt]),
        "T-acc": _mean_or_nan(~pred_empty[~nt]),
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
    _check_lengths(preds, gts, ("kinds", kinds))
    bad = sorted({k for k in kinds if k not in ("part", "object")}, key=str)
    if bad:
        raise ValueError(f"kinds must be 'part' or 'object', found {bad}")
    iou = per_sample_iou(preds, gts, threshold=threshold)
    is_part = np.array([k == "part" for k in kinds], bool)
    return {
        "mIoU_part": _mean_or_nan(iou[is_part]),
        "mIoU_object_part": float(iou.mean()),
        "n": float(iou.size),
        "n_part": float(is_part.sum()),
    }


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
    _check_lengths(preds, gts, ("classes", classes))
    c = _overlaps(preds, gts, threshold)
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
    return {"mIoU": _mean_or_nan(vals), "n_classes": float(vals.size), "n": float(len(preds))}


def _sod_map(arr: Any, i: int, normalize: bool) -> np.ndarray:
    """A saliency map (H, W) as float64 in [0, 1], min-max stretched when `normalize`."""
    a = _as_2d(arr, "prediction", i)
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        a = _pred_mask(a, i, 0.5).astype(np.float64)
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_map(a, i).astype(np.float64)
    else:
        raise ValueError(f"sample {i}: prediction dtype {a.dtype} is not bool or float")
    if normalize:
        # MATLAB's mapminmax, as the SOD toolboxes and pysodmetrics apply to saved maps
        lo, hi = a.min(), a.max()
        if hi > lo:
            a = (a - lo) / (hi - lo)
    return a


def _f_curve(pred: np.ndarray, gt: np.ndarray, beta2: float) -> np.ndarray:
    """F-measure at each 8-bit threshold t (pred_u8 >= t), shape (256,), index = t.

    Hand-written rather than pysodmetrics' FmeasureV2 (same numbers; see the module
    docstring for what the library cost): one bincount over 512 bins counts both halves.
    """
    q = (pred * 255).astype(np.uint8)  # truncation, as pysodmetrics quantises
    # background pixels in bins 0..255, foreground in 256..511
    hist = np.bincount(q.ravel().astype(np.intp) + SOD_LEVELS * gt.ravel(), minlength=2 * SOD_LEVELS)
    bg, fg = hist[:SOD_LEVELS], hist[SOD_LEVELS:]
    tp = np.cumsum(fg[::-1])[::-1]  # foreground pixels with value >= t
    predicted = tp + np.cumsum(bg[::-1])[::-1]
    precision = tp / np.maximum(predicted, 1)
    recall = tp / max(int(fg.sum()), 1)
    f = np.zeros(SOD_LEVELS, np.float64)
    ok = tp > 0  # there precision and recall are both > 0; elsewhere F is 0
    f[ok] = (1 + beta2) * precision[ok] * recall[ok] / (beta2 * precision[ok] + recall[ok])
    return f


def sod_metrics(preds: Sequence[Any], gts: Sequence[Any], *, normalize: bool = True) -> dict[str, float]:
    """Salient / camouflaged object detection: MAE, max F-measure, S-measure.

    The float map is used as is (not thresholded). With `normalize=True` (default) each map
    is min-max stretched to [0, 1], which is what pysodmetrics' `step(pred_u8, gt_u8)` and
    the MATLAB toolboxes behind published SOD/COD numbers do; passing `u8 / 255` here gives
    the same numbers as pysodmetrics on `u8`. `normalize=False` keeps the values as given.

    Args:
        preds: N saliency maps, each (H_i, W_i) float in [0, 1] (or bool).
        gts: N ground truths, each (H_i, W_i) bool, or None (treated as an empty mask).
        normalize: min-max stretch each map first.

    Returns:
        dict: `MAE`, `maxF` (beta^2 = 0.3, max over 256 thresholds of the mean-over-images
        F curve), `S-measure` (alpha = 0.5), `n`, all floats.

    Raises:
        ValueError: as `referring_metrics`.
        ImportError: pysodmetrics is missing.
    """
    # scipy/skimage/cv2 behind pysodmetrics: imported only when used
    from py_sod_metrics import MAE, Smeasure

    n = _check_lengths(preds, gts)
    mae, sm = MAE(), Smeasure(alpha=SOD_ALPHA)
    f_sum = np.zeros(SOD_LEVELS, np.float64)
    for i in range(n):
        p = _sod_map(preds[i], i, normalize)
        g = _gt_mask(gts[i], i, p.shape)
        if g is None:
            g = np.zeros(p.shape, bool)
        mae.step(p, g, normalize=False)  # the map is already in [0, 1]: no second stretch
        sm.step(p, g, normalize=False)
        f_sum += _f_curve(p, g, SOD_BETA2)
    return {
        "MAE": float(mae.get_results()["mae"]),
        "maxF": float((f_sum / n).max()),
        "S-measure": float(sm.get_results()["sm"]),
        "n": float(n),
    }
