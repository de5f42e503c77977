"""Area and score thresholds, mask NMS, CLIP text-region score."""

from functools import partial

import numpy as np
from engine_fixtures import box, photo, save_tiny_clip

from annotation_engine.engine_config import FilterConfig
from annotation_engine.filters import ClipScorer, filter_proposals, mask_nms
from annotation_engine.mask_generators import Proposal

_box = partial(box, shape=(50, 50))


def test_mask_nms_drops_duplicates_keeps_distinct():
    a = _box(0, 20, 0, 20)
    a2 = _box(0, 20, 0, 19)  # IoU 0.95 with a
    b = _box(25, 45, 25, 45)
    ring = _box(0, 20, 0, 20) & ~_box(2, 18, 2, 18)  # inside a's box but a different mask
    assert mask_nms([a, a2, b, ring], 0.8) == [0, 2, 3]
    assert mask_nms([a, a2, b], 0.99) == [0, 1, 2]


def test_filter_proposals_area_scores_rank_and_limit():
    props = [
        Proposal(_box(0, 1, 0, 5), {"predicted_iou": 0.99}),  # 0.2% of the image: too small
        Proposal(_box(0, 50, 0, 50), {"predicted_iou": 0.99}),  # the whole image: too large
        Proposal(_box(0, 20, 0, 20), {"predicted_iou": 0.5}),  # low score
        Proposal(_box(0, 20, 0, 20), {"predicted_iou": 0.95, "stability_score": 0.97}),
        Proposal(_box(0, 20, 0, 19), {"predicted_iou": 0.96}),  # duplicate, better score
        Proposal(_box(30, 40, 30, 40), {}),  # no score to check: kept
        Proposal(_box(30, 35, 0, 10), {"predicted_iou": 0.9}),
    ]
    cfg = FilterConfig(
        min_area=0.005,
        max_area=0.9,
        min_scores={"predicted_iou": 0.88},
        nms_iou=0.8,
        rank_by="predicted_iou",
        max_targets=10,
    )
    kept = filter_proposals(props, cfg)
    assert [p.scores.get("predicted_iou") for p in kept] == [0.96, 0.9, None]
    cfg.rank_by, cfg.max_targets = "area", 2
    assert [int(p.mask.sum()) for p in filter_proposals(props, cfg)] == [400, 100]  # the larger duplicate wins now
    assert filter_proposals([], cfg) == []


def test_clip_score_from_a_local_tiny_model(tmp_path):
    path = save_tiny_clip(tmp_path / "clip")
    scorer = ClipScorer(str(path))
    rgb = photo("astronaut", 96)
    m = np.zeros(rgb.shape[:2], bool)
    m[10:50, 20:70] = True
    s = scorer.score(rgb, [m, ~m], ["the face at the top", "the red region"])
    assert len(s) == 2 and all(-1.0 <= v <= 1.0 for v in s) and s[0] != s[1]
    assert scorer.identity()["clip_model"] == str(path)
