"""unilseg.eval.families: tasks -> metric families; a missing prediction's stand-in is wrong in every metric."""

import numpy as np
import pytest

from unilseg.eval.families import FAMILIES, TASK_FAMILY, family_of, missing_stand_in
from unilseg.eval.metrics_referring import gres_metrics, part_metrics, referring_metrics
from unilseg.eval.metrics_semantic import semantic_metrics
from unilseg.eval.metrics_sod import sod_metrics

SHAPE = (12, 16)


def _box() -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[2:8, 3:11] = True
    return m


def test_tasks_map_to_their_families():
    assert family_of("res").name == "referring" and family_of("auto").name == "referring"
    assert family_of("gres").name == "gres" and family_of("cod").name == "sod" and family_of("cod").continuous
    assert set(TASK_FAMILY.values()) <= set(FAMILIES.names())


@pytest.mark.parametrize("gt", [None, np.zeros(SHAPE, bool)], ids=["none", "empty"])
def test_missing_no_target_is_a_false_positive_never_a_rejection(gt):
    pred = missing_stand_in(gt, SHAPE, continuous=False)
    m = gres_metrics([pred], [gt])
    assert (m["N-acc"], m["gIoU"], m["cIoU"]) == (0.0, 0.0, 0.0)
    assert referring_metrics([pred], [gt])["mIoU"] == 0.0  # an empty mask would score IoU 1 here
    assert semantic_metrics([pred], [gt], ["all cats"])["mIoU"] == 0.0
    sod = sod_metrics([missing_stand_in(gt, SHAPE, continuous=True)], [gt])
    assert sod["MAE"] == 1.0 and sod["S-measure"] == pytest.approx(0.0)


def test_missing_target_scores_zero_in_every_binary_metric():
    gt = _box()
    pred = missing_stand_in(gt, SHAPE, continuous=False)
    m = referring_metrics([pred], [gt])
    assert m["mIoU"] == m["oIoU"] == m["prec@0.5"] == 0.0
    g = gres_metrics([pred], [gt])
    assert (g["T-acc"], g["gIoU"], g["cIoU"]) == (0.0, 0.0, 0.0)  # not "found": the inverse would count as found
    assert part_metrics([pred], [gt], ["part"])["mIoU_part"] == 0.0
    assert semantic_metrics([pred], [gt], ["all cats"])["mIoU"] == 0.0


def test_missing_sod_map_is_the_worst_map():
    gt = _box()
    stand_in = missing_stand_in(gt, SHAPE, continuous=True)
    assert stand_in.dtype == np.float32
    worst = sod_metrics([stand_in], [gt])
    empty = sod_metrics([np.zeros(SHAPE, np.float32)], [gt])
    assert worst["MAE"] == 1.0 and empty["MAE"] == pytest.approx(gt.mean())  # empty would look fairly good
    assert worst["S-measure"] < empty["S-measure"] and worst["maxF"] <= empty["maxF"]
