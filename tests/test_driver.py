"""The annotation driver through Ray actors: incremental runs, quarantine, actor and run kills."""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml
from click.testing import CliRunner
from PIL import Image

from annotation_engine.actor import EnginePool
from annotation_engine.config import load_engine_config
from annotation_engine.driver import annotate_images, list_images, read_bytes
from engine_fixtures import photo, save_tiny_blip
from shards.manifest import read_manifest
from shards.reader import ShardReader
from cli import main

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]
# the weight-free engine on small images, one CPU per actor (two actors fit on 2 cores)
ENGINE = {"base": "weightfree", "max_side": 96, "generator": {"params": {"n_segments": 80}},
          "resources": {"num_cpus": 1, "batch_size": 1, "inflight": 2}}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from unilseg.ray_runtime import ensure_ray

    address = ensure_ray(num_cpus=2)
    yield address
    ray.shutdown()


def _write_photos(folder: Path, names=PHOTOS, side: int = 96) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        p = folder / f"{n}.png"
        Image.fromarray(photo(n, side)).save(p)
        paths.append(p)
    return paths


def _keys(split: Path) -> Counter:
    return Counter(s.key for s in ShardReader(split).samples(decode_images=False))


def _quarantine(split: Path) -> list[dict]:
    q = split / "quarantine.jsonl"
    return [json.loads(line) for line in q.read_text().splitlines()] if q.exists() else []


def test_list_images(tmp_path):
    paths = _write_photos(tmp_path / "a", ["coffee", "rocket"])
    (tmp_path / "a" / "notes.txt").write_text("not listed from a folder")
    assert list_images(tmp_path / "a") == [str(p) for p in paths]
    assert list_images(str(tmp_path / "a" / "*.png")) == [str(p) for p in paths]
    assert list_images(f"file://{tmp_path}/a") == [f"file://{p}" for p in paths]
    assert read_bytes(f"file://{paths[0]}") == paths[0].read_bytes()
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG header claiming width x height pixels, with a tiny (truncated) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _write_bad_images(images: Path) -> set[str]:
    buf = io.BytesIO()
    Image.fromarray(photo("astronaut", 96)).save(buf, format="JPEG")
    (images / "truncated.jpg").write_bytes(buf.getvalue()[:400])
    (images / "empty.png").write_bytes(b"")
    (images / "text.jpg").write_text("this is not an image")
    (images / "bomb.png").write_bytes(_bomb_png())
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(images / "flat.png")  # no region: zero targets
    return {"truncated.jpg", "empty.png", "text.jpg", "bomb.png", "flat.png"}


def test_bad_images_rerun_config_change_and_new_images(ray_cluster, tmp_path):
    images = tmp_path / "images"
    _write_photos(images, PHOTOS[:4])
    bad = _write_bad_images(images)
    out = tmp_path / "auto"
    split = out / "train"
    t0 = time.perf_counter()
    first = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    t_first = time.perf_counter() - t0

    # bad inputs are quarantined with their reason, the good ones written
    assert (first["written"], first["skipped"], first["quarantined"]) == (4, 0, 5)
    assert first["counts"]["samples"] == 4 and first["status"] == "complete"
    q = {Path(r["input"]).name: r for r in _quarantine(split)}
    assert set(q) == bad
    assert "0 bytes" in q["empty.png"]["reason"] and "not a readable image" in q["text.jpg"]["reason"]
    assert "bomb" in q["bomb.png"]["reason"] or "pixels" in q["bomb.png"]["reason"]
    assert "not a readable image" in q["truncated.jpg"]["reason"]
    assert q["flat.png"]["kind"] == "no_targets" and q["text.jpg"]["kind"] == "bad_input"
    assert all(r["engine_version"] == first["engine_version"] for r in q.values())
    m = read_manifest(split)
    assert set(m.column("engine_version").to_pylist()) == {first["engine_version"]}
    assert all(v.startswith("the ") for v in m.column("text").to_pylist())

    # same images, same engine (as a YAML file): nothing to do, no actor started (the CLI path);
    # "no targets" and bad inputs count as processed for this engine version
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(ENGINE))
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["annotate", str(images), "--out", str(out), "--engine", str(config),
                                    "--no-progress"])
    t_rerun = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    assert "0 written, 9 already done, 0 quarantined" in res.output
    assert t_rerun < 0.3 * t_first
    assert sum(_keys(split).values()) == 4 and len(_quarantine(split)) == 5

    # one new image: only it is annotated
    _write_photos(images, ["immunohistochemistry"])
    again = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert (again["written"], again["skipped"], again["quarantined"]) == (1, 9, 0)

    # a changed config re-annotates every image under a new engine version
    changed = {**ENGINE, "filters": {"max_targets": 3}}
    second = annotate_images(str(images), str(out), engine=changed, actors=1, progress=False)
    assert second["written"] == 5 and second["engine_version"] != first["engine_version"]
    m = read_manifest(split, columns=["key", "engine_version"])
    new = [k for k, v in zip(m.column("key").to_pylist(), m.column("engine_version").to_pylist())
           if v == second["engine_version"]]
    assert len(set(new)) == 5 and max(Counter(new).values()) <= 3
    keys = _keys(split)
    assert len(keys) == 10 and set(keys.values()) == {1}


def test_killed_actor_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    paths = [str(p) for p in _write_photos(tmp_path / "images", PHOTOS)]
    cfg = load_engine_config(ENGINE)
    pool = EnginePool(cfg.to_dict(), actors=2, num_cpus=1)
    try:
        pool.ready()
        # the caller's priority (Ray's default is 15)
        assert ray.get([a.niceness.remote() for a in pool.actors]) == [os.getpriority(os.PRIO_PROCESS, 0)] * 2
        victim = pool.pids()[0]
        seen = []
        for item, ok, result in pool.map(paths, read_bytes, batch_size=1, inflight=2):
            assert ok, result
            seen.append(item)
            if len(seen) == 1:
                os.kill(victim, signal.SIGKILL)  # in flight on it: at least one more batch
        assert sorted(seen) == sorted(paths)  # every image exactly once
        assert pool.restarts == 1 and victim not in pool.pids()
    finally:
        pool.shutdown()


def test_killed_run_then_rerun_finishes_the_job(ray_cluster, tmp_path):
    images = tmp_path / "images"
    _write_photos(images, PHOTOS)
    out = tmp_path / "auto"
    cfg = {**ENGINE, "resources": {"num_cpus": 1, "batch_size": 1, "inflight": 1}}
    code = (f"from annotation_engine.driver import annotate_images\n"
            f"annotate_images({str(images)!r}, {str(out)!r}, engine={cfg!r}, actors=1, max_count=1, "
            f"ray_address={ray_cluster!r}, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "RAY_AUTH_MODE": "token"})
    try:
        deadline = time.time() + 120  # a loaded machine starts the subprocess slowly
        while not (out / "train" / "shard-000001.tar").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    split = out / "train"
    partial = len(set(read_manifest(split, columns=["key"]).column("key").to_pylist()))
    assert 2 <= partial < len(PHOTOS)
    res = annotate_images(str(images), str(out), engine=cfg, actors=1, max_count=1, progress=False)
    assert res["skipped"] == partial and res["written"] == len(PHOTOS) - partial
    keys = _keys(split)
    assert len(keys) == len(PHOTOS) and set(keys.values()) == {1}


def test_sam_tiny_hf_through_actors(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_CAPTIONER", str(save_tiny_blip(tmp_path / "blip")))
    images = tmp_path / "images"
    _write_photos(images, ["coffee", "chelsea"], side=128)
    res = annotate_images(str(images), str(tmp_path / "auto"), engine="sam-tiny-hf", actors=1, progress=False)
    assert res["written"] == 2, _quarantine(tmp_path / "auto" / "train")
    samples = list(ShardReader(tmp_path / "auto" / "train").samples(decode_images=False))
    targets = [t for s in samples for t in s.targets]
    assert targets and all(t.provenance["captioner"] == "hf" and t.provenance["generator"] == "sam"
                           and "predicted_iou" in t.scores for t in targets)


def test_clear_errors_before_any_actor_starts(ray_cluster, tmp_path, monkeypatch):
    images = _write_photos(tmp_path / "images", ["coffee"])
    monkeypatch.delenv("SAM_CHECKPOINT", raising=False)
    with pytest.raises(ValueError, match="SAM_CHECKPOINT"):
        annotate_images([str(images[0])], str(tmp_path / "a"), engine="sam-blip", progress=False)
    with pytest.raises(ValueError, match="GPU"):
        annotate_images([str(images[0])], str(tmp_path / "b"), engine={**ENGINE, "resources": {"num_gpus": 1}},
                        progress=False)
    res = CliRunner().invoke(main, ["annotate", str(images[0]), "--out", str(tmp_path / "c"), "--engine", "nope"])
    assert res.exit_code != 0 and "unknown engine preset" in res.output
