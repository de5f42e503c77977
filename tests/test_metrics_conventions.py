"""METRIC_CONVENTIONS covers every metric we report."""

from __future__ import annotations

from metric_fixtures import GT_A, PRED_A

from unilseg.eval.metrics_conventions import METRIC_CONVENTIONS
from unilseg.eval.metrics_referring import gres_metrics, part_metrics, referring_metrics
from unilseg.eval.metrics_sod import sod_metrics


def test_conventions_cover_every_reported_metric():
    keys = set(referring_metrics([PRED_A], [GT_A])) | set(gres_metrics([PRED_A], [GT_A]))
    keys |= set(sod_metrics([GT_A], [GT_A])) | set(part_metrics([PRED_A], [GT_A], ["part"]))
    missing = {k for k in keys if not k.startswith("n")} - set(METRIC_CONVENTIONS)
    assert not missing
    assert "mIoU (semantic)" in METRIC_CONVENTIONS
    assert ">=" in METRIC_CONVENTIONS["prec@0.5"]
