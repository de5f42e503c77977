"""Salient / camouflaged object detection (SOD/COD) metrics: MAE, max F-measure, S-measure.

MAE and S-measure come from pysodmetrics (imported when `sod_metrics` runs). The max
F-measure stays hand-written (`_f_curve`, same numbers as pysodmetrics' FmeasureV2, tests
check): FmeasureV2 took several times as long (two np.histogram calls over boolean-indexed
copies per map), over the 20 % allowed (BENCHMARKS.md, "SOD metrics: pysodmetrics vs
hand-written"). Inputs as `mask_pairs` describes, except that a float map is used as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unilseg.eval.mask_pairs import as_2d, check_lengths, float_map, gt_mask, pred_mask

SOD_BETA2 = 0.3  # beta^2 of the F-measure, weighting precision over recall (Achanta et al.)
SOD_ALPHA = 0.5  # S-measure balance between object and region similarity (Fan et al.)
SOD_LEVELS = 256  # thresholds 0..255 of the 8-bit map for the max F-measure


def _sod_map(arr: Any, i: int, normalize: bool) -> np.ndarray:
    """A saliency map (H, W) as float64 in [0, 1], min-max stretched when `normalize`."""
    a = as_2d(arr, "prediction", i)
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        a = pred_mask(a, i, 0.5).astype(np.float64)
    elif np.issubdtype(a.dtype, np.floating):
        a = float_map(a, i).astype(np.float64)
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

    n = check_lengths(preds, gts)
    mae, sm = MAE(), Smeasure(alpha=SOD_ALPHA)
    f_sum = np.zeros(SOD_LEVELS, np.float64)
    for i in range(n):
        p = _sod_map(preds[i], i, normalize)
        g = gt_mask(gts[i], i, p.shape)
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
