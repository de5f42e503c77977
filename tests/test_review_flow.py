"""flows/review.py and the pipeline's use of the reviewed version: training takes the reviewed
split, with the review section's weight, once review-import has written it (no server needed)."""

import logging

from shard_fixtures import make_sample

from flows.config import PipelineConfig
from flows.pipeline import _annotated_data
from shards.writer import ShardWriter


def test_training_takes_the_reviewed_version_with_its_weight(tmp_path):
    cfg = PipelineConfig.validated(
        {
            "data_root": str(tmp_path),
            "annotate": {"weight": 0.02},
            "review": {"project": "p", "by": "contrast", "lowest": 5, "weight": 0.5},
        },
        "x",
    )
    annotated = {"dataset": str(tmp_path / "auto"), "split": "train"}
    log = logging.getLogger("test")
    loc, weight = _annotated_data(cfg, annotated, log)
    assert str(loc) == str(tmp_path / "auto" / "train") and weight == 0.02  # nothing reviewed yet
    with ShardWriter(tmp_path / "auto" / "reviewed") as w:
        w.write(make_sample(0))
    loc, weight = _annotated_data(cfg, annotated, log)
    assert str(loc) == str(tmp_path / "auto" / "reviewed") and weight == 0.5
    no_review = PipelineConfig.validated({"data_root": str(tmp_path)}, "x")
    assert _annotated_data(no_review, annotated, log)[1] == 1.0  # without the section: the annotated split
