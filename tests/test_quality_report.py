"""COCO dicts, pictures and the written report of an engine evaluation (no engine run)."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from test_quality_recall import records

from annotation_engine.quality import pictures
from annotation_engine.quality.coco import ground_truth, results
from annotation_engine.quality.recall import IOU_THRESHOLDS
from annotation_engine.quality.report import write_report


def test_coco_dicts_share_image_ids_and_keep_our_fields():
    images = records(0, extra=1)
    gt, res = ground_truth(images), results(images)
    assert [im["id"] for im in gt["images"]] == [1, 2, 3] and gt["images"][0]["file_name"] == "k0"
    assert {r["image_id"] for r in res} == {1, 2, 3}
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3, 4]
    assert [a["group"] for a in gt["annotations"]] == ["object", "part", "stuff", "object"]
    assert [a["area"] for a in gt["annotations"]] == [1600, 800, 1600, 1600]
    assert ground_truth(images, groups=["part"])["annotations"][0]["id"] == 2  # same ids when filtered
    first = [r for r in res if r["image_id"] == 1]
    assert [r["score"] for r in first] == pytest.approx([1.0, 2 / 3, 1 / 3])  # the engine's order
    assert first[0]["expression"] == "pthe red square" and isinstance(first[0]["segmentation"]["counts"], str)


def test_results_rank_by_a_named_score():
    images = records(0)
    images[0].proposals[0].scores["clip"] = 0.2
    res = results(images, score="clip")
    assert res[0]["score"] == 0.2 and res[1]["score"] == 0.5  # one without it keeps the engine's order


def test_pictures_are_drawn(tmp_path):
    pictures.recall_curve({"all": [1.0] * 6 + [0.0] * 4, "part": [math.nan] * 10}, IOU_THRESHOLDS, tmp_path / "r.png")
    assert Image.open(tmp_path / "r.png").size == (640, 380)
    assert pictures.score_scatter({}, tmp_path / "s.png") is None
    pictures.score_scatter({"a": ([0.1, 0.2], [0.5, 1.0]), "b": ([3, 3], [0, 1])}, tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").size == (640, 260)
    m = np.zeros((10, 12), bool)
    m[2:6, 2:6] = True
    items = [{"id": f"k_{i}", "key": "k", "iou": i / 3, "expression": f"e{i}", "pred": m, "gt": m} for i in range(4)]
    drawn = pictures.best_worst_sheet(
        items, {"k": np.zeros((10, 12, 3), np.uint8)}, tmp_path / "p.png", 2, [3, 2], [0, 1]
    )
    assert drawn["best"] == ["k_3", "k_2"] and drawn["worst"] == ["k_0", "k_1"]
    assert pictures.best_worst_sheet([], {}, tmp_path / "q.png", 2, [], []) is None


def test_report_writes_nan_as_null(tmp_path):
    masks = {
        "AR@1": 0.5,
        "AR@100": math.nan,
        "n_images": 1,
        "n_truth": 2,
        "n_proposals": 0,
    }
    metrics = {
        "masks": masks,
        "scores": {"clip": {"spearman": math.nan, "n": 2, "deciles": []}},
        "expressions": {"method": "minilm", "similarity": {"mean": math.nan, "median": math.nan, "n": 0}},
        "images": {
            "evaluated": 1,
            "with_proposals": 0,
            "no_proposals": 0,
            "quarantined": 1,
            "quarantine": [{"key": "k", "kind": "crashed_engine", "reason": "signal SIGSEGV"}],
        },
        "run": {
            "engine_name": "e",
            "dataset": "d",
            "split": "val",
            "engine_version": "v",
            "limit": None,
            "rank_by": None,
        },
    }
    write_report(tmp_path, metrics)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["masks"]["AR@100"] is None and saved["masks"]["AR@1"] == 0.5
    md = (tmp_path / "report.md").read_text()
    assert "| AR@100 | n/a |" in md and "crashed_engine: signal SIGSEGV" in md and "| clip | 2 | n/a |" in md
