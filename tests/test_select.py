"""annotation_engine/review/select.py and config.py: which targets go to review."""

import pytest

from annotation_engine.review.config import ReviewConfig
from annotation_engine.review.select import select_targets
from common.errors import UniLSegError

ROWS = [(f"k{i // 3}", i % 3, {"iou": (i * 7 % 10) / 10}) for i in range(12)] + [("z", 0, {})]


def test_lowest_n_by_a_score_least_certain_first():
    picks = select_targets(ROWS, ReviewConfig(by="iou", lowest=3))
    assert [p.score for p in picks] == [0.0, 0.0, 0.1] and {p.why for p in picks} == {"lowest"}
    assert [(p.key, p.target) for p in picks] == [("k0", 0), ("k3", 1), ("k1", 0)]  # ties: by key


def test_below_a_threshold_and_a_random_audit_of_the_rest():
    picks = select_targets(ROWS, ReviewConfig(by="iou", below=0.35, sample=4, seed=1))
    ruled = [p for p in picks if p.why == "below"]
    audit = [p for p in picks if p.why == "sample"]
    assert [p.score for p in ruled] == [0.0, 0.0, 0.1, 0.2, 0.3] and len(audit) == 4
    assert not {(p.key, p.target) for p in ruled} & {(p.key, p.target) for p in audit}
    assert select_targets(ROWS, ReviewConfig(by="iou", below=0.35, sample=4, seed=1)) == picks  # deterministic
    assert select_targets(ROWS, ReviewConfig(by="iou", below=0.35, sample=4, seed=2)) != picks
    assert len(select_targets(ROWS, ReviewConfig(sample=100))) == len(ROWS)  # never more than there are


def test_a_score_no_target_has_is_one_line():
    with pytest.raises(UniLSegError, match="no target has a score named 'clip' .scores in this split: iou"):
        select_targets(ROWS, ReviewConfig(by="clip", lowest=3))


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({}, "say which targets"),
        ({"lowest": 3}, "need --by"),
        ({"by": "iou", "lowest": 3, "below": 0.5}, "not both"),
        ({"by": "iou", "lowest": 0}, "lowest must be >= 1"),
    ],
)
def test_settings_that_pick_nothing_sensible_are_refused(kw, msg):
    with pytest.raises(UniLSegError, match=msg):
        ReviewConfig(**kw)
