"""Semantic metrics from "all <class>" samples: per-class accumulation, empty classes."""

from __future__ import annotations

import math

import pytest
from metric_fixtures import PRED_C, m

from unilseg.eval.metrics_semantic import semantic_metrics, semantic_per_class_iou


def test_semantic_accumulates_per_class():
    preds = [
        m([[1, 1], [0, 0]]),  # cat: I 1 U 2
        m([[1, 0], [0, 0]]),  # dog: I 1 U 1
        m([[1, 1, 0], [1, 1, 0], [0, 0, 0]]),  # cat: I 4 U 4
        m([[0, 0], [0, 0]]),
    ]  # sky: absent and not predicted -> U 0, excluded
    gts = [m([[1, 0], [0, 0]]), m([[1, 0], [0, 0]]), m([[1, 1, 0], [1, 1, 0], [0, 0, 0]]), None]
    classes = ["cat", "dog", "cat", "sky"]
    per_class = semantic_per_class_iou(preds, gts, classes)
    # cat: (1 + 4) / (2 + 4) = 5/6, not the per-sample mean (0.5 + 1) / 2
    assert per_class == pytest.approx({"cat": 5 / 6, "dog": 1.0})
    assert list(per_class) == ["cat", "dog"]
    r = semantic_metrics(preds, gts, classes)
    assert r["mIoU"] == pytest.approx((5 / 6 + 1) / 2)
    assert r["n_classes"] == 2 and r["n"] == 4
    with pytest.raises(ValueError, match="classes"):
        semantic_metrics(preds, gts, classes[:3])


def test_semantic_all_empty_is_nan():
    r = semantic_metrics([PRED_C], [None], ["sky"])
    assert math.isnan(r["mIoU"]) and r["n_classes"] == 0
