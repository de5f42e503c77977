"""Tiny hand-countable masks shared by the metric tests (test_metrics_*.py, test_mask_pairs.py)."""

from __future__ import annotations

import numpy as np


def m(rows) -> np.ndarray:
    """A bool mask from nested 0/1 lists."""
    return np.array(rows, dtype=bool)


# A: I = 1 (top-left), U = 3 -> IoU 1/3 ; B: I = 3, U = 4 -> 0.75 ; C: both empty -> IoU 1.
# Shapes differ across samples (2x3, 2x2), which is allowed.
PRED_A, GT_A = m([[1, 1, 0], [0, 0, 0]]), m([[1, 0, 0], [1, 0, 0]])
PRED_B, GT_B = m([[1, 1], [1, 1]]), m([[1, 1], [1, 0]])
PRED_C, GT_C = m([[0, 0], [0, 0]]), m([[0, 0], [0, 0]])
