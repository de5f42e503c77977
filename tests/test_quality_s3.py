"""A split at an s3:// URL (moto) gives the same engine-quality report as the same split on disk,
reached through the environment's credentials or through a Location's own options."""

import json

import pytest
import s3fs
from quality_fixtures import engine, write_split
from s3_fixtures import s3_bucket, s3_options  # noqa: F401 (fixtures)

from annotation_engine.quality.run import evaluate_engine
from shards.storage import Location


def _comparable(m: dict) -> str:
    return json.dumps({k: m[k] for k in ("masks", "scores", "expressions", "images")}, sort_keys=True, default=str)


def _upload(fs: s3fs.S3FileSystem, local, remote: str) -> None:
    fs.put(str(local), remote, recursive=True)


def test_split_and_report_at_s3_match_local(s3_bucket, ray_here, tmp_path):  # noqa: F811
    write_split(tmp_path / "rects" / "val")
    fs = s3fs.S3FileSystem()
    _upload(fs, tmp_path / "rects", f"{s3_bucket}/data/rects")
    local = evaluate_engine(engine(5), str(tmp_path / "rects"), str(tmp_path / "local"), split="val", progress=False)
    remote = evaluate_engine(
        engine(5), f"{s3_bucket}/data/rects", f"{s3_bucket}/reports/r", split="val", progress=False
    )
    assert _comparable(remote) == _comparable(local) and remote["masks"]["AR@100"] == pytest.approx(0.6)
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{s3_bucket}/reports/r")}
    assert {"report.md", "metrics.json", "proposals.json", "ground_truth.json", "recall.png", "proposals"} <= names
    assert "images" not in names  # the exported images are removed
    assert json.loads(fs.cat(f"{s3_bucket}/reports/r/metrics.json"))["masks"]["AR@100"] == pytest.approx(0.6)


@pytest.mark.slow
def test_a_location_s_options_reach_every_read_and_write_and_stay_secret(s3_options, ray_here, tmp_path):  # noqa: F811
    bucket, options = s3_options
    write_split(tmp_path / "rects" / "val")
    fs = s3fs.S3FileSystem(**options)
    _upload(fs, tmp_path / "rects", f"{bucket}/data/rects")
    local = evaluate_engine(engine(5), str(tmp_path / "rects"), str(tmp_path / "local"), split="val", progress=False)
    data, out = Location(f"{bucket}/data/rects", options), Location(f"{bucket}/reports/r", options)
    remote = evaluate_engine(engine(5), data, out, split="val", progress=False)
    assert _comparable(remote) == _comparable(local)
    written = [f for f in fs.find(f"{bucket}/reports/r")]
    assert any(f.endswith("/metrics.json") for f in written)
    for f in written:
        assert options["secret"].encode() not in fs.cat(f), f
