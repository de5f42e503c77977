"""Evaluation: the field's metrics as pure functions (`metrics`) and the published
numbers to print beside ours (`published`). Only numpy is imported here; pysodmetrics is
imported when `sod_metrics` runs."""

from unilseg.eval.metrics import (
    METRIC_CONVENTIONS,
    gres_metrics,
    part_metrics,
    per_sample_iou,
    referring_metrics,
    semantic_metrics,
    semantic_per_class_iou,
    sod_metrics,
)

__all__ = [
    "METRIC_CONVENTIONS",
    "gres_metrics",
    "part_metrics",
    "per_sample_iou",
    "referring_metrics",
    "semantic_metrics",
    "semantic_per_class_iou",
    "sod_metrics",
]
