"""Known-answer tests of the class-agnostic recall (pycocotools COCOeval) and precision."""

import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from quality_fixtures import SPEC, WIDTH, H, W

from annotation_engine.quality.coco import ImageRecord, Region, granularity_group, ground_truth, results
from annotation_engine.quality.recall import best_matches, mask_metrics
from shards.rle import mask_to_rle


def _rect(y0, y1, x0, shift=0):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0 + shift : x0 + shift + WIDTH] = True
    return mask_to_rle(m)


def records(shift: int | None = 0, extra: int = 0) -> list[ImageRecord]:
    """The fixture's images; proposals = the ground truth shifted by ``shift`` px (None: none),
    plus ``extra`` proposals in an empty corner."""
    out = []
    for i, rects in enumerate(SPEC):
        truth = [Region(_rect(y0, y1, x0), [t], granularity_group(task, g)) for _, y0, y1, x0, task, g, t in rects]
        props = [] if shift is None else [Region(_rect(y0, y1, x0, shift), [f"p{t}"]) for _, y0, y1, x0, *_, t in rects]
        props += [Region(_rect(H - 10, H, 0), ["corner"]) for _ in range(extra)]
        out.append(ImageRecord(f"k{i}", i + 1, W, H, f"sha{i}", truth, props))
    return out


def _metrics(images):
    return mask_metrics(images, results(images), best_matches(images))[0]


def test_ground_truth_itself_scores_one():
    m = _metrics(records(0))
    assert m["AR@1"] == pytest.approx(0.75)  # image 0 has 2 masks: its best-ranked proposal finds one
    for k in ("AR@10", "AR@100", "recall@0.5", "recall@0.75", "precision@0.5"):
        assert m[k] == pytest.approx(1.0), k
    for k in ("AR@100.small", "AR@100.medium", "AR@100.object", "AR@100.part", "AR@100.stuff"):
        assert m[k] == pytest.approx(1.0), k
    assert math.isnan(m["AR@100.large"])  # no mask over 96^2 px
    assert (m["n_images"], m["n_truth"], m["n_proposals"]) == (3, 4, 4)


def test_shifted_ground_truth_scores_the_iou_worked_out_by_hand():
    # 40 px wide rectangles shifted 5 px: IoU 35/45 = 0.778 >= thresholds 0.50..0.75 (6 of 10)
    m = _metrics(records(5))
    assert m["AR@100"] == pytest.approx(0.6) and m["AR@1"] == pytest.approx(0.75 * 0.6)
    assert m["recall@0.5"] == m["recall@0.75"] == pytest.approx(1.0)
    assert m["recall_curve"] == pytest.approx([1.0] * 6 + [0.0] * 4)
    assert m["AR@100.part"] == m["AR@100.small"] == pytest.approx(0.6)
    assert m["precision@0.5"] == pytest.approx(1.0)
    ious = [iou for per in best_matches(records(5)) for iou, _ in per]
    assert ious == pytest.approx([35 / 45] * 4)
    # shifted 15 px: IoU 25/55 = 0.4545 < 0.5: nothing found, nothing precise
    m = _metrics(records(15))
    assert m["AR@100"] == m["recall@0.5"] == m["precision@0.5"] == 0.0


def test_no_proposals_score_zero():
    m = _metrics(records(None))
    for k in ("AR@1", "AR@10", "AR@100", "recall@0.5", "recall@0.75", "AR@100.object"):
        assert m[k] == 0.0, k
    assert math.isnan(m["precision@0.5"]) and m["n_proposals"] == 0


def test_precision_counts_proposals_that_match_nothing():
    m = _metrics(records(0, extra=1))  # one stray proposal per image: 4 of 7 match
    assert m["precision@0.5"] == pytest.approx(4 / 7)
    assert m["AR@100"] == pytest.approx(1.0)


def test_our_ar_equals_plain_pycocotools_on_the_saved_files(tmp_path):
    images = records(5, extra=2)
    images[0].proposals.reverse()  # the engine's order ranks the stray ones first in image 0
    res = results(images)
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth(images)))
    (tmp_path / "res.json").write_text(json.dumps(res))
    ours = mask_metrics(images, res, best_matches(images))[0]
    gt = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "res.json")), "segm")
    ev.params.useCats = 0
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    # COCOeval.stats: 6..8 = AR@1, AR@10, AR@100; 9..11 = AR small, medium, large (at 100)
    for i, k in enumerate(["AR@1", "AR@10", "AR@100", "AR@100.small", "AR@100.medium"], start=6):
        assert ours[k] == pytest.approx(ev.stats[i]), k
    assert ours["AR@1"] < ours["AR@100"]  # the ranking mattered


def test_granularity_groups():
    assert granularity_group("res", "instance") == granularity_group("gres", "group") == "object"
    assert granularity_group("part", "part") == granularity_group("auto", "part") == "part"
    assert granularity_group("semantic", "class") == granularity_group("x", "scene") == "stuff"
