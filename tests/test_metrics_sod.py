"""SOD/COD metrics: hand-computed cases and agreement with pysodmetrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from metric_fixtures import GT_A, GT_B, m

from unilseg.eval.metrics_sod import sod_metrics


def test_sod_hand_computed():
    pred = np.array([[1.0, 0.0], [0.5, 0.5]])
    gt = m([[1, 0], [0, 1]])
    r = sod_metrics([pred], [gt])
    assert r["MAE"] == pytest.approx(0.25)  # |0| + |0| + |0.5| + |0.5| over 4
    # 8-bit map 255, 0, 127, 127. t in 128..255: {px0} -> P 1, R 1/2 -> F 1.3*0.5/(0.3+0.5)
    # t in 1..127: {px0, px2, px3} -> P 2/3, R 1 -> 0.7222 ; t = 0: P 1/2, R 1 -> 0.5652
    assert r["maxF"] == pytest.approx(0.8125)


def test_sod_empty_ground_truth_and_normalize_flag():
    pred = np.full((3, 4), 0.2)
    r = sod_metrics([pred], [None], normalize=False)
    assert r["MAE"] == pytest.approx(0.2)
    assert r["S-measure"] == pytest.approx(0.8)  # gt all background: 1 - mean(pred)
    assert r["maxF"] == 0.0  # nothing to recall
    # min-max stretch: values 0.2 / 0.6 become 0 / 1
    pred2 = np.repeat(np.array([[0.2, 0.2, 0.6, 0.6]]), 4, axis=0)
    gt2 = pred2 > 0.5
    assert sod_metrics([pred2], [gt2])["MAE"] == pytest.approx(0.0)
    assert sod_metrics([pred2], [gt2], normalize=False)["MAE"] == pytest.approx(0.3)


def _pysod(preds_u8, gts, normalize=True):
    import py_sod_metrics as psm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure (v1) announces its future removal
        fm, mae, sm = psm.Fmeasure(beta=0.3), psm.MAE(), psm.Smeasure(alpha=0.5)
    fm2 = psm.FmeasureV2({"f": psm.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    for p, g in zip(preds_u8, gts):
        if normalize:
            args = (p, g.astype(np.uint8) * 255)
        else:
            args = (p / 255.0, g)
        for metric in (fm, fm2, mae, sm):
            metric.step(*args, normalize=normalize)
    return {
        "MAE": mae.get_results()["mae"],
        "maxF": fm.get_results()["fm"]["curve"].max(),
        "maxF (FmeasureV2)": fm2.get_results()["f"]["dynamic"].max(),
        "S-measure": sm.get_results()["sm"],
    }


@pytest.mark.parametrize("normalize", [True, False])
def test_sod_agrees_with_pysodmetrics(rng, normalize):
    preds, gts = [], []
    for i in range(12):
        h, w = rng.integers(8, 48, 2)
        lo, hi = sorted(rng.integers(0, 256, 2))
        p = rng.integers(lo, hi + 1, (h, w)).astype(np.uint8)
        g = np.zeros((h, w), bool)
        if i % 5 == 1:
            g[:] = True  # all foreground
        elif i % 5 != 0:  # i % 5 == 0 stays all background
            y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
            g[y : y + h // 2, x : x + w // 2] = True
            p[g] = np.maximum(p[g], rng.integers(0, 256, int(g.sum()))).astype(np.uint8)
        preds.append(p)
        gts.append(g)
    ours = sod_metrics([p / 255.0 for p in preds], gts, normalize=normalize)
    ref = _pysod(preds, gts, normalize=normalize)
    for k in ref:
        assert ours[k.split(" ")[0]] == pytest.approx(float(ref[k]), abs=1e-12), k
    assert 0 < ours["maxF"] < 1 and 0 < ours["S-measure"] < 1


def test_sod_bool_predictions():
    r = sod_metrics([GT_A, GT_B], [GT_A, GT_B])
    assert r["MAE"] == 0.0 and r["maxF"] == pytest.approx(1.0) and r["S-measure"] == pytest.approx(1.0)
