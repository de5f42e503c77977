"""Referring metrics (RefCOCO, gRefCOCO, RefCOCOm): hand-computed cases, edge cases, a
ReLA-style reference loop, and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from metric_fixtures import GT_A, GT_B, GT_C, PRED_A, PRED_B, PRED_C, m

from unilseg.eval.metrics_referring import (
    PREC_THRESHOLDS,
    gres_metrics,
    part_metrics,
    per_sample_iou,
    referring_metrics,
)


def test_referring_hand_computed():
    r = referring_metrics([PRED_A, PRED_B, PRED_C], [GT_A, GT_B, GT_C])
    assert r["oIoU"] == pytest.approx(4 / 7)  # (1 + 3 + 0) / (3 + 4 + 0)
    assert r["mIoU"] == pytest.approx((1 / 3 + 0.75 + 1) / 3)
    # IoUs 1/3, 0.75, 1: two reach 0.5..0.7, only C reaches 0.8 and 0.9
    assert [r[f"prec@{t}"] for t in PREC_THRESHOLDS] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3])
    assert r["n"] == 3
    assert all(type(v) is float for v in r.values())


def test_prec_counts_iou_equal_to_threshold():
    # I = 1, U = 2 -> IoU exactly 0.5 ; I = 3, U = 5 -> IoU exactly 0.6
    half = (m([[1, 1]]), m([[1, 0]]))
    three_fifths = (m([[1, 1, 1, 1, 1]]), m([[1, 1, 1, 0, 0]]))
    r = referring_metrics([half[0], three_fifths[0]], [half[1], three_fifths[1]])
    assert r["prec@0.5"] == 1.0
    assert r["prec@0.6"] == 0.5
    assert r["prec@0.7"] == 0.0


def test_float_predictions_threshold_strictly():
    gt = m([[1, 1, 0, 0]])
    pred = np.array([[0.9, 0.5, 0.4, 0.2]])
    # > 0.5: only the first pixel -> I 1, U 2
    assert referring_metrics([pred], [gt])["mIoU"] == pytest.approx(0.5)
    # > 0.35: first three pixels -> I 2, U 3
    assert referring_metrics([pred], [gt], threshold=0.35)["mIoU"] == pytest.approx(2 / 3)
    # float32 and integer 0/1 inputs work too
    assert referring_metrics([pred.astype(np.float32)], [gt.astype(np.uint8)])["mIoU"] == pytest.approx(0.5)
    assert referring_metrics([np.array([[1, 1, 0, 0]], np.int64)], [gt])["mIoU"] == 1.0


def test_referring_none_gt_is_empty_mask():
    r = referring_metrics([PRED_C, PRED_B], [None, None])
    assert r["mIoU"] == pytest.approx(0.5)  # empty on empty -> 1, four pixels on nothing -> 0
    assert r["oIoU"] == 0.0  # I 0, U 4


def test_empty_predictions_and_empty_ground_truth():
    r = referring_metrics([PRED_C, np.zeros((2, 3), bool)], [GT_B, GT_A])
    assert r["oIoU"] == 0.0 and r["mIoU"] == 0.0 and r["prec@0.5"] == 0.0
    r = referring_metrics([PRED_B], [GT_C])  # prediction where nothing is
    assert r["oIoU"] == 0.0 and r["mIoU"] == 0.0


def test_all_empty_batch():
    preds = [np.zeros((3, 3), bool), np.zeros((4, 2), bool)]
    r = referring_metrics(preds, [np.zeros((3, 3), bool), None])
    assert r["oIoU"] == 1.0 and r["mIoU"] == 1.0 and r["prec@0.9"] == 1.0
    g = gres_metrics(preds, [None, None])
    assert g["gIoU"] == 1.0 and g["cIoU"] == 1.0 and g["N-acc"] == 1.0
    assert math.isnan(g["T-acc"])  # no target samples: undefined, not a made-up 0


def test_gres_hand_computed():
    preds = [
        m([[1, 1], [0, 0]]),  # target, I 1 U 2 -> 0.5, predicted non-empty
        m([[0, 0], [0, 0]]),  # target, predicted empty: I 0 U 4 -> 0
        m([[0, 0], [0, 0]]),  # no-target (None), predicted empty -> 1
        m([[1, 0], [0, 0]]),  # no-target (empty array), one pixel predicted -> 0, U += 1
        np.zeros((3, 3)),
    ]  # no-target (None), float map all 0 -> empty -> 1
    gts = [m([[1, 0], [0, 0]]), m([[1, 1], [1, 1]]), None, m([[0, 0], [0, 0]]), None]
    g = gres_metrics(preds, gts)
    assert g["gIoU"] == pytest.approx((0.5 + 0 + 1 + 0 + 1) / 5)
    assert g["cIoU"] == pytest.approx(1 / 7)  # I: 1 ; U: 2 + 4 + 0 + 1 + 0
    assert g["N-acc"] == pytest.approx(2 / 3)
    assert g["T-acc"] == pytest.approx(1 / 2)
    assert g["n"] == 5 and g["n_no_target"] == 3
    assert all(type(v) is float for v in g.values())


def test_gres_no_no_target_samples_gives_nan_n_acc():
    g = gres_metrics([PRED_A, PRED_B], [GT_A, GT_B])
    assert math.isnan(g["N-acc"]) and g["T-acc"] == 1.0
    assert g["cIoU"] == pytest.approx(4 / 7)


def _gres_reference(preds, gts):
    """ReLA's bookkeeping (TP/TN/FP/FN with positive = no-target), one sample at a time,
    with 'predicted no-target' read as 'the mask is empty'."""
    acc_iou = acc_i = acc_u = 0.0
    nt = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    for p, g in zip(preds, gts):
        g = np.zeros_like(p) if g is None else g
        inter, union = int((p & g).sum()), int((p | g).sum())
        pred_nt = not p.any()
        if not g.any():
            if pred_nt:
                nt["TP"] += 1
                acc_iou += 1
            else:
                nt["FN"] += 1
                acc_u += union
        else:
            nt["FP" if pred_nt else "TN"] += 1
            acc_iou += inter / union
            acc_i += inter
            acc_u += union
    return {
        "gIoU": acc_iou / len(preds),
        "cIoU": acc_i / acc_u,
        "N-acc": nt["TP"] / (nt["TP"] + nt["FN"]),
        "T-acc": nt["TN"] / (nt["TN"] + nt["FP"]),
    }


def test_gres_agrees_with_rela_style_loop(rng):
    preds, gts = [], []
    for i in range(60):
        h, w = rng.integers(4, 30, 2)
        p = rng.random((h, w)) < rng.choice([0.0, 0.05, 0.4])
        g = rng.random((h, w)) < 0.3
        preds.append(p)
        gts.append(None if i % 4 == 0 else (np.zeros_like(g) if i % 4 == 1 else g))
    ours, ref = gres_metrics(preds, gts), _gres_reference(preds, gts)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k]), k


def test_per_sample_iou_and_referring_agree_with_loop(rng):
    preds = [rng.random((9, 7)) for _ in range(20)]
    gts = [rng.random((9, 7)) < 0.4 for _ in range(20)]
    expected = np.array([((p > 0.5) & g).sum() / ((p > 0.5) | g).sum() for p, g in zip(preds, gts)])
    np.testing.assert_allclose(per_sample_iou(preds, gts), expected)
    assert referring_metrics(preds, gts)["mIoU"] == pytest.approx(expected.mean())


def test_part_metrics_hand_computed():
    r = part_metrics([PRED_A, PRED_B, PRED_C], [GT_A, GT_B, GT_C], ["part", "object", "part"])
    assert r["mIoU_part"] == pytest.approx((1 / 3 + 1) / 2)  # A and C
    assert r["mIoU_object_part"] == pytest.approx((1 / 3 + 0.75 + 1) / 3)
    assert r["n"] == 3 and r["n_part"] == 2
    r = part_metrics([PRED_B], [GT_B], ["object"])
    assert math.isnan(r["mIoU_part"]) and r["mIoU_object_part"] == 0.75
    with pytest.raises(ValueError, match="'part' or 'object'"):
        part_metrics([PRED_B], [GT_B], ["whole"])
    with pytest.raises(ValueError, match="kinds"):
        part_metrics([PRED_B], [GT_B], ["part", "part"])


def test_speed_is_vectorised(rng):
    # 300 pairs of 480x480 in well under a second (a per-pixel Python loop takes minutes)
    base = rng.random((480, 480)) < 0.5
    preds = [np.roll(base, i, axis=0) for i in range(300)]
    gts = [np.roll(base, i, axis=1) for i in range(300)]
    t = time.process_time()  # CPU time: a busy machine does not fail the test
    referring_metrics(preds, gts)
    gres_metrics(preds, gts)
    assert time.process_time() - t < 3.0
