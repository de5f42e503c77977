"""unilseg.eval.overlays: choosing best/worst, colours, and the sheet's size."""

from types import SimpleNamespace

import numpy as np
import pytest
from eval_fixtures import H, W, box, write_split
from PIL import Image

from unilseg.eval.overlays import GT_COLOR, PRED_COLOR, best_and_worst, draw_prediction, sheet_size, write_best_worst


def test_best_and_worst_are_disjoint_and_ordered():
    ious = [0.5, 0.9, 0.1, 0.9, 0.3, 0.7]
    assert best_and_worst(ious, 2) == ([1, 3], [2, 4])
    assert best_and_worst(ious, 8) == ([1, 3, 5], [2, 4, 0])  # fewer than 2k: half each
    assert best_and_worst([0.2], 3) == ([0], [])
    with pytest.raises(ValueError):
        best_and_worst(ious, 0)


def test_prediction_red_ground_truth_green():
    rgb = np.zeros((10, 10, 3), np.uint8)
    gt, pred = box(0, 5, 0, 5, 10, 10), box(5, 10, 5, 10, 10, 10)
    out = draw_prediction(rgb, pred, gt)
    assert tuple(out[2, 2]) == tuple(int(c * 0.5) for c in GT_COLOR)  # inside gt, blended
    assert tuple(out[7, 7]) == tuple(int(c * 0.5) for c in PRED_COLOR)
    assert out[2, 7].max() == 0  # neither
    covered = draw_prediction(rgb, box(0, 10, 0, 10, 10, 10), gt)  # prediction over everything
    assert tuple(covered[4, 2]) == GT_COLOR and tuple(covered[2, 2]) != GT_COLOR  # gt outline stays on top
    with pytest.raises(ValueError, match="do not match"):
        draw_prediction(rgb, pred[:5], gt)


def test_sheet_has_a_best_row_and_a_worst_row(tmp_path):
    gts = write_split(tmp_path / "s")
    items = [
        SimpleNamespace(id=tid, key=tid.rsplit("_", 1)[0], iou=i / 10, task="res", text=f"text {i}", gt=m)
        for i, (tid, m) in enumerate(gts.items())
    ]
    info = write_best_worst(
        tmp_path / "s", items, tmp_path / "sheet.png", 2, lambda it: np.zeros((H, W), bool), lambda it: it.gt
    )
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size == sheet_size(2, 2, 2) == (448, 2 * (224 + 72)) == (info["width"], info["height"])
    assert info["best"] == [items[5].id, items[4].id] and info["worst"] == [items[0].id, items[1].id]
    assert write_best_worst(tmp_path / "s", [], tmp_path / "none.png", 2, None, None) is None
