"""Evaluation: the field's metrics as pure functions (`metrics_referring`, `metrics_semantic`,
`metrics_sod` on the pairs `mask_pairs` checks, `metrics_conventions`) and the published
numbers to print beside ours (`published`). Only numpy is imported here; pysodmetrics is
imported when `sod_metrics` runs."""

from unilseg.eval.metrics_conventions import METRIC_CONVENTIONS
from unilseg.eval.metrics_referring import gres_metrics, part_metrics, per_sample_iou, referring_metrics
from unilseg.eval.metrics_semantic import semantic_metrics, semantic_per_class_iou
from unilseg.eval.metrics_sod import sod_metrics

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
