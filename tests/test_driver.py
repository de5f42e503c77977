"""The annotation run on Ray Data (one local Ray): incremental runs, quarantine, duplicates, a
poison image, inputs that are not there, clear errors before any actor starts. Runs that stop
early (kills of the engine actor, the driver, the ledger): test_driver_stops.py."""

import io
import os
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from crash_generator import poison_image
from driver_fixtures import ENGINE, PHOTOS, one_line_error, quarantine_records, split_keys, write_photos
from engine_fixtures import photo, save_tiny_blip
from PIL import Image

from annotation_engine.driver import annotate_images
from cli import main
from shards.manifest import read_manifest
from shards.reader import ShardReader


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


@pytest.mark.slow
def test_bad_images_rerun_config_change_and_new_images(ray_cluster, tmp_path):
    images = tmp_path / "images"
    write_photos(images, PHOTOS[:4])
    bad = _write_bad_images(images)
    out = tmp_path / "auto"
    split = out / "train"
    first = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)

    # bad inputs are quarantined with their reason, the good ones written
    assert (first["written"], first["skipped"], first["quarantined"]) == (4, 0, 5)
    assert first["counts"]["samples"] == 4 and first["status"] == "complete"
    q = {Path(r["input"]).name: r for r in quarantine_records(split)}
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
    res = CliRunner().invoke(
        main, ["annotate", str(images), "--out", str(out), "--engine", str(config), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "0 written, 9 already done, 0 quarantined" in res.output
    again = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert again["stats"]["counts"].get("read", 0) == 0  # the source index: no image read again
    assert sum(split_keys(split).values()) == 4 and len(quarantine_records(split)) == 5

    # one new image: only it is annotated
    write_photos(images, ["immunohistochemistry"])
    again = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert (again["written"], again["skipped"], again["quarantined"]) == (1, 9, 0)

    # a changed config re-annotates every image under a new engine version
    changed = {**ENGINE, "filters": {"max_targets": 3}}
    second = annotate_images(str(images), str(out), engine=changed, actors=1, progress=False)
    assert second["written"] == 5 and second["engine_version"] != first["engine_version"]
    m = read_manifest(split, columns=["key", "engine_version"])
    new = [
        k
        for k, v in zip(m.column("key").to_pylist(), m.column("engine_version").to_pylist())
        if v == second["engine_version"]
    ]
    assert len(set(new)) == 5 and max(Counter(new).values()) <= 3
    keys = split_keys(split)
    assert len(keys) == 10 and set(keys.values()) == {1}
    assert not list(split.glob(".lock*"))  # each run's writers removed their lock files (they once piled up)


def test_duplicates_and_a_poison_image(ray_cluster, tmp_path):
    images = tmp_path / "images"
    write_photos(images, PHOTOS[:3])
    (images / "copy-of-coffee.png").write_bytes((images / "coffee.png").read_bytes())
    Image.fromarray(poison_image()).save(images / "poison.png")
    crashy = {**ENGINE, "generator": {"name": "crash_generator:CrashOnGrey", "params": {"n_segments": 80}}}
    res = annotate_images(str(images), str(tmp_path / "auto"), engine=crashy, actors=1, progress=False)
    # the poison image killed its actor, then its child process: quarantined; the run went on
    q = {Path(r["input"]).name: r for r in quarantine_records(tmp_path / "auto" / "train")}
    assert set(q) == {"poison.png"} and q["poison.png"]["kind"] == "crashed_engine"
    assert "exit code 3" in q["poison.png"]["reason"]
    assert res["written"] == 3 and res["stats"]["counts"]["duplicates"] == 1 and res["status"] == "complete"
    keys = split_keys(tmp_path / "auto" / "train")
    assert len(keys) == 3 and set(keys.values()) == {1}  # the copy was not written again


def test_inputs_that_are_not_there_fail_before_ray_starts(tmp_path, monkeypatch):
    """A missing folder or a symlink loop named on the command line: one line, no Ray started and
    nothing written (it once started Ray, ~25 s, and left OUT/train/dataset.json "complete" with
    0 samples)."""
    import annotation_engine.driver as driver

    def no_ray(*_, **__):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "ensure_ray", no_ray)
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    for named, why in [(tmp_path / "missing", "no such file or folder"), (tmp_path / "loop-a", "symbolic link loop")]:
        res = CliRunner().invoke(main, ["annotate", str(named), "--out", str(tmp_path / "out"), "--no-progress"])
        assert why in one_line_error(res)
    assert not (tmp_path / "out").exists()


def test_sam_tiny_hf_through_actors(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_CAPTIONER", str(save_tiny_blip(tmp_path / "blip")))
    images = tmp_path / "images"
    write_photos(images, ["coffee", "chelsea"], side=128)
    res = annotate_images(str(images), str(tmp_path / "auto"), engine="sam-tiny-hf", actors=1, progress=False)
    assert res["written"] == 2, quarantine_records(tmp_path / "auto" / "train")
    samples = list(ShardReader(tmp_path / "auto" / "train").samples(decode_images=False))
    targets = [t for s in samples for t in s.targets]
    assert targets and all(
        t.provenance["captioner"] == "hf" and t.provenance["generator"] == "sam" and "predicted_iou" in t.scores
        for t in targets
    )


def test_clear_errors_before_any_actor_starts(ray_cluster, tmp_path, monkeypatch):
    images = write_photos(tmp_path / "images", ["coffee"])
    monkeypatch.delenv("SAM_CHECKPOINT", raising=False)
    with pytest.raises(ValueError, match="SAM_CHECKPOINT"):
        annotate_images([str(images[0])], str(tmp_path / "a"), engine="sam-blip", progress=False)
    with pytest.raises(ValueError, match="GPU"):
        annotate_images(
            [str(images[0])], str(tmp_path / "b"), engine={**ENGINE, "resources": {"num_gpus": 1}}, progress=False
        )
    res = CliRunner().invoke(main, ["annotate", str(images[0]), "--out", str(tmp_path / "c"), "--engine", "nope"])
    assert res.exit_code != 0 and "unknown engine preset" in res.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    res = CliRunner().invoke(main, ["annotate", str(tmp_path / "empty"), "--out", str(tmp_path / "d")])
    assert res.exit_code == 1 and "no images under" in res.output
    assert not (tmp_path / "d" / "train" / "dataset.json").exists()
