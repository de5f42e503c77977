"""A split at an s3:// URL (moto) gives the same engine-quality report as the same split on disk."""

import json

import pytest
import s3fs
from quality_fixtures import engine, write_split
from s3_fixtures import s3_bucket_module  # noqa: F401 (a fixture)

from annotation_engine.quality.run import evaluate_engine


@pytest.fixture(scope="module")
def ray_after_s3(s3_bucket_module, ray_cluster):  # noqa: F811 - Ray's workers need the endpoint in their environment
    return s3_bucket_module


def _comparable(m: dict) -> dict:
    return {k: m[k] for k in ("masks", "scores", "expressions", "images")}


def test_split_and_report_at_s3_match_local(ray_after_s3, tmp_path):
    bucket = ray_after_s3
    write_split(tmp_path / "rects" / "val")
    fs = s3fs.S3FileSystem()
    fs.put(str(tmp_path / "rects"), f"{bucket}/data/rects", recursive=True)
    local = evaluate_engine(engine(5), str(tmp_path / "rects"), str(tmp_path / "local"), split="val", progress=False)
    remote = evaluate_engine(engine(5), f"{bucket}/data/rects", f"{bucket}/reports/r", split="val", progress=False)
    assert json.dumps(_comparable(remote), sort_keys=True, default=str) == json.dumps(
        _comparable(local), sort_keys=True, default=str
    )
    assert remote["masks"]["AR@100"] == pytest.approx(0.6)
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{bucket}/reports/r")}
    assert {"report.md", "metrics.json", "proposals.json", "ground_truth.json", "recall.png", "proposals"} <= names
    assert "images" not in names  # the exported images are removed
    saved = json.loads(fs.cat(f"{bucket}/reports/r/metrics.json"))
    assert saved["masks"]["AR@100"] == pytest.approx(0.6)
