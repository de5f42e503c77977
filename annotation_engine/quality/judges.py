"""Scores as judges: how well each score the engine writes predicts a proposal's true IoU.

For every score name found in the proposals' ``scores`` (predicted_iou, stability_score,
clip, contrast, area_fraction, ...), over the proposals that carry it:

    spearman   Spearman's rank correlation between the score and the proposal's best IoU with
               any ground-truth mask of its image (scipy.stats.spearmanr); NaN when either is
               constant. Positive: a higher score means a better mask.
    deciles    the proposals sorted by the score and cut into 10 groups of (nearly) equal
               count, lowest first: each with its score range, count and mean best IoU. A
               useful judge has mean IoU rising from the first decile to the last.
    n          proposals that carry the score

Review should be steered by the scores with the highest correlation (DESIGN.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

DECILES = 10


def score_names(scores: Sequence[dict[str, float]]) -> list[str]:
    """Every score name that appears, sorted."""
    return sorted({k for s in scores for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def deciles(values: np.ndarray, ious: np.ndarray, bins: int = DECILES) -> list[dict[str, Any]]:
    """(score, IoU) pairs cut into ``bins`` groups by score rank; fewer groups when there are
    fewer pairs. Ties are cut in input order (a stable sort)."""
    order = np.argsort(values, kind="stable")
    out = []
    for i, idx in enumerate(np.array_split(order, min(bins, len(order)))):
        out.append(
            {
                "decile": i + 1,
                "score_min": float(values[idx].min()),
                "score_max": float(values[idx].max()),
                "n": int(idx.size),
                "mean_iou": float(ious[idx].mean()),
            }
        )
    return out


def spearman(values: np.ndarray, ious: np.ndarray) -> float:
    """Spearman's rho; NaN for fewer than 3 pairs or a constant side."""
    if values.size < 3 or np.ptp(values) == 0 or np.ptp(ious) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(values, ious).statistic)


def judge_scores(scores: Sequence[dict[str, float]], ious: Sequence[float]) -> dict[str, dict[str, Any]]:
    """score name -> {spearman, n, deciles} over the proposals that carry it.

    Args:
        scores: each proposal's scores.
        ious: each proposal's best IoU with the ground truth (same order).
    """
    out = {}
    for name in score_names(scores):
        idx = [i for i, s in enumerate(scores) if name in s and math.isfinite(float(s[name]))]
        v = np.asarray([float(scores[i][name]) for i in idx], np.float64)
        y = np.asarray([ious[i] for i in idx], np.float64)
        out[name] = {"spearman": spearman(v, y), "n": len(idx), "deciles": deciles(v, y) if idx else []}
    return out
