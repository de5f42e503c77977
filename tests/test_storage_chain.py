"""The whole chain with every output on a (moto) S3 bucket, through the command line where there
is one: a synthetic referring set and a salient-object set converted, photos annotated by 2
engine actors, `unilseg shards verify` on the bucket, `unilseg train` for 20 steps on 2 Ray
workers with RUN on S3, resumed to 30 steps from S3, `unilseg eval` with checkpoint, data and
report on S3. Sources stay local. Asserts that no data or runs folder appeared locally and that
the secret key of the environment's credentials is in no file written (bucket, local files, the
Ray session's logs)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import encode
from engine_fixtures import photo
from PIL import Image
from s3_fixtures import s3_bucket  # noqa: F401 (fixture)

from cli import main
from shards import storage

pytestmark = pytest.mark.slow
# the weight-free engine on small images, one CPU per actor (two actors fit on 2 cores)
ENGINE = {
    "base": "weightfree",
    "max_side": 96,
    "generator": {"params": {"n_segments": 40}},
    "resources": {"num_cpus": 1, "batch_size": 1},
}


def _sod_source(root, n=6):
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / "DUTS-Image").mkdir(parents=True, exist_ok=True)
        (root / "DUTS-Mask").mkdir(parents=True, exist_ok=True)
        (root / "DUTS-Image" / f"{i}.jpg").write_bytes(encode(rng.integers(0, 255, (48, 64, 3), np.uint8), "JPEG"))
        m = np.zeros((48, 64), np.uint8)
        m[8 + i : 30, 10 : 40 + i] = 255
        (root / "DUTS-Mask" / f"{i}.png").write_bytes(encode(m))


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else None


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.output


def _convert(tmp_path, data):
    """Local sources: a synthetic referring set and a salient-object set converted through the
    command line; every output in the bucket."""
    from shards.synth import ensure_shapes

    ensure_shapes(tmp_path / "src" / "synth", images=24, size=64, seed=0)
    for split in ("train", "val"):
        _cli(*f"convert refcoco {tmp_path / 'src' / 'synth'} --split {split} --max-count 8 --out {data}/synth".split())
    _sod_source(tmp_path / "src" / "duts")
    assert "6 images, 6 targets" in _cli("convert", "sod", tmp_path / "src" / "duts", "--out", f"{data}/sod")


def _annotate_and_verify(tmp_path, data):
    """Photos annotated by 2 engine actors into the bucket, then `unilseg shards verify` on it."""
    from annotation_engine.driver import annotate_images

    (tmp_path / "photos").mkdir()
    for name in ("coffee", "chelsea", "astronaut"):
        Image.fromarray(photo(name, 96)).save(tmp_path / "photos" / f"{name}.png")
    annotated = annotate_images(str(tmp_path / "photos"), f"{data}/auto", engine=ENGINE, actors=2, progress=False)
    assert annotated["written"] == 3 and annotated["counts"]["targets"] > 0
    out = _cli("shards", "verify", data)
    assert [line.split()[1] for line in out.splitlines() if line.startswith("OK")] == [
        f"{data}/auto/train",
        f"{data}/sod/train",
        f"{data}/synth/train",
        f"{data}/synth/val",
    ], out


def _train_and_resume(data, run):
    """`unilseg train` for 20 steps on 2 Ray workers with RUN on S3, then resumed to 30 from S3."""
    from unilseg.train_worker import read_metrics

    train = f"train --preset unilseg-tiny --data {data}/synth --data {data}/sod:0.5 --data {data}/auto:0.5"
    train += f" --out {run} --workers 2 --batch-size 4 --checkpoint-every 20 --log-every 10 --shuffle-buffer 8"
    for steps in (20, 30):  # 20 steps, then resumed from S3 to 30
        out = _cli(*train.split(), "--steps", steps)
        assert any(line.startswith(f"step {steps}: {run}/latest.pt") for line in out.splitlines()), out
    starts = [(e["step"], e["from"], e["world_size"]) for e in read_metrics(run) if e["event"] == "start"]
    assert starts[0] == (0, "scratch", 2) and starts[1][0] == 20 and starts[1][1] in ("ray", "latest"), starts
    assert [e["step"] for e in read_metrics(run) if e["event"] == "report"] == [10, 20, 30]
    assert storage.listdir(storage.join(run, "checkpoints")) == ["step-000020.pt", "step-000030.pt"]
    assert any(n.startswith("checkpoint_") for n in storage.listdir(storage.join(run, "train")))  # Ray Train's


def _evaluate(data, run, report):
    """`unilseg eval` with checkpoint, data and report on S3."""
    out = _cli(
        *f"eval --checkpoint {run}/latest.pt --data {data}/synth --split val --limit 6 --overlays 2".split(),
        *f"--no-progress --out {report}".split(),
    )
    assert out.strip().endswith(f"wrote {report}/metrics.json, {report}/report.md, {report}/overlays.png")
    doc = json.loads(storage.read_bytes(f"{report}/metrics.json"))
    assert doc["run"]["predictor"]["checkpoint"] == f"{run}/latest.pt" and doc["run"]["split"] == "val"
    assert sum(c["scored"] for c in doc["counts"].values()) == 6


def _assert_secret_nowhere(secret, bucket, roots):
    """The secret key is in no object of the bucket and no file under `roots`."""
    fs, _ = storage.filesystem(bucket)
    objects = fs.find(bucket.removeprefix("s3://"))
    assert len(objects) > 25
    for o in objects:
        assert secret.encode() not in fs.cat_file(o), o
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f


@pytest.mark.timeout(600)
def test_every_location_on_s3(s3_bucket, tmp_path, monkeypatch):
    import ray
    import s3fs

    from common.ray_runtime import ensure_ray
    from flows.paths import PROJECT_ROOT

    secret = f"unilseg-test-secret-{secrets.token_hex(8)}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto takes any key: this one must leak nowhere
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    project = {d: _tree(PROJECT_ROOT / d) for d in ("data", "runs")}
    data, run, report = (storage.join(s3_bucket, p) for p in ("data", "runs/r1", "reports/r1"))
    _convert(tmp_path, data)  # sources are local; every output goes to the bucket
    ray.shutdown()  # a Ray started by an earlier test lacks this test's environment
    ensure_ray(num_cpus=2)
    try:
        _annotate_and_verify(tmp_path, data)
        _train_and_resume(data, run)
        _evaluate(data, run, report)
        session_logs = ray._private.worker._global_node.get_session_dir_path()
    finally:
        ray.shutdown()  # its workers carry this test's environment

    # nothing written to local data or runs folders: the project's are as they were, the
    # working directory is empty, and the temp dir holds only the sources and the checkpoint cache
    assert {d: _tree(PROJECT_ROOT / d) for d in ("data", "runs")} == project
    assert _tree(tmp_path / "cwd") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cwd", "photos", "src"]
    _assert_secret_nowhere(secret, s3_bucket, [tmp_path, Path(session_logs) / "logs"])
