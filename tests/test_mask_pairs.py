"""Input checks every metric shares (mask_pairs): lengths, shapes, dtypes, NaN, ranges."""

from __future__ import annotations

import numpy as np
import pytest
from metric_fixtures import GT_A, PRED_A, PRED_B, m

from unilseg.eval.metrics_referring import gres_metrics, part_metrics, referring_metrics
from unilseg.eval.metrics_semantic import semantic_metrics
from unilseg.eval.metrics_sod import sod_metrics

CALLS = {
    "referring": lambda p, g: referring_metrics(p, g),
    "gres": lambda p, g: gres_metrics(p, g),
    "sod": lambda p, g: sod_metrics(p, g),
    "part": lambda p, g: part_metrics(p, g, ["part"] * len(p)),
    "semantic": lambda p, g: semantic_metrics(p, g, ["cat"] * len(p)),
}


@pytest.mark.parametrize("name", CALLS)
def test_errors(name):
    f = CALLS[name]
    with pytest.raises(ValueError, match="differ in length"):
        f([PRED_A, PRED_B], [GT_A])
    with pytest.raises(ValueError, match="empty lists"):
        f([], [])
    with pytest.raises(
        ValueError,
        match=r"sample 1: prediction shape \(2, 2\) differs from ground truth "
        r"shape \(3, 2\)",
    ):
        f([PRED_A, PRED_B], [GT_A, np.zeros((3, 2), bool)])
    with pytest.raises(ValueError, match="2-D"):
        f([np.zeros((2, 2, 1), bool)], [np.zeros((2, 2), bool)])
    with pytest.raises(ValueError, match="2-D"):
        f([np.zeros((2, 2), bool)], [np.zeros(4, bool)])
    with pytest.raises(ValueError, match="sample 0: prediction contains NaN"):
        f([np.array([[0.2, np.nan]])], [m([[0, 1]])])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        f([np.array([[-3.0, 2.5]])], [m([[0, 1]])])  # logits, not probabilities
    with pytest.raises(ValueError, match="binarise"):
        f([m([[0, 1]])], [np.array([[0, 255]], np.uint8)])
