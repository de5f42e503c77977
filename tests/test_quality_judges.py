"""Scores as judges: Spearman correlation with IoU and the decile table."""

import math

import numpy as np
import pytest

from annotation_engine.quality.judges import deciles, judge_scores, score_names


def test_a_score_that_orders_iou_correlates_one_and_its_deciles_rise():
    ious = np.linspace(0, 1, 20)
    scores = [{"good": float(v), "bad": float(-v), "flat": 0.5} for v in ious]
    j = judge_scores(scores, list(ious))
    assert j["good"]["spearman"] == pytest.approx(1.0) and j["bad"]["spearman"] == pytest.approx(-1.0)
    assert math.isnan(j["flat"]["spearman"])  # a constant score says nothing
    d = j["good"]["deciles"]
    assert len(d) == 10 and [x["n"] for x in d] == [2] * 10
    assert [x["mean_iou"] for x in d] == sorted(x["mean_iou"] for x in d)
    assert d[0]["score_min"] == 0.0 and d[-1]["score_max"] == 1.0


def test_only_proposals_with_the_score_count():
    j = judge_scores([{"clip": 0.1}, {}, {"clip": 0.9}, {"clip": 0.5}], [0.2, 0.9, 0.8, 0.5])
    assert j["clip"]["n"] == 3 and j["clip"]["spearman"] == pytest.approx(1.0)
    assert len(j["clip"]["deciles"]) == 3  # fewer pairs than deciles: one per pair


def test_score_names_skip_non_numbers():
    assert score_names([{"a": 1.0, "b": "x", "c": True}, {"d": 2}]) == ["a", "d"]


def test_deciles_cut_by_rank():
    d = deciles(np.arange(100.0), np.arange(100.0) / 100)
    assert [x["mean_iou"] for x in d] == pytest.approx([0.045 + 0.1 * i for i in range(10)])
