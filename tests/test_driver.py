"""The annotation run on Ray Data (one local Ray): incremental runs, quarantine, duplicates, a
poison image, kills of the engine actor and of the driver."""

import io
import json
import os
import signal
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml
from click.testing import CliRunner
from crash_generator import poison_image
from engine_fixtures import kill_annotation_driver, photo, save_tiny_blip
from PIL import Image

from annotation_engine.driver import annotate_images
from cli import main
from shards.manifest import read_manifest
from shards.reader import ShardReader

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]
# the weight-free engine on small images, one CPU per actor (two actors fit on 2 cores)
ENGINE = {
    "base": "weightfree",
    "max_side": 96,
    "generator": {"params": {"n_segments": 80}},
    "resources": {"num_cpus": 1, "batch_size": 1},
}


def _write_photos(folder: Path, names=PHOTOS, side: int = 96) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        p = folder / f"{n}.png"
        Image.fromarray(photo(n, side)).save(p)
        paths.append(p)
    return paths


def _many_photos(folder: Path, n: int, side: int = 96) -> None:
    """n distinct images: the sample photos shifted sideways."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        Image.fromarray(np.roll(photo(name, side), 5 * (i // len(PHOTOS)), axis=1)).save(folder / f"{name}-{i}.png")


def _keys(split: Path) -> Counter:
    return Counter(s.key for s in ShardReader(split).samples(decode_images=False))


def _quarantine(split: Path) -> list[dict]:
    q = split / "quarantine.jsonl"
    return [json.loads(line) for line in q.read_text().splitlines()] if q.exists() else []


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
    first = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)

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
    res = CliRunner().invoke(
        main, ["annotate", str(images), "--out", str(out), "--engine", str(config), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "0 written, 9 already done, 0 quarantined" in res.output
    again = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert again["stats"]["counts"].get("read", 0) == 0  # the source index: no image read again
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
    new = [
        k
        for k, v in zip(m.column("key").to_pylist(), m.column("engine_version").to_pylist())
        if v == second["engine_version"]
    ]
    assert len(set(new)) == 5 and max(Counter(new).values()) <= 3
    keys = _keys(split)
    assert len(keys) == 10 and set(keys.values()) == {1}
    assert not list(split.glob(".lock*"))  # each run's writers removed their lock files (they once piled up)


def test_duplicates_and_a_poison_image(ray_cluster, tmp_path):
    images = tmp_path / "images"
    _write_photos(images, PHOTOS[:3])
    (images / "copy-of-coffee.png").write_bytes((images / "coffee.png").read_bytes())
    Image.fromarray(poison_image()).save(images / "poison.png")
    crashy = {**ENGINE, "generator": {"name": "crash_generator:CrashOnGrey", "params": {"n_segments": 80}}}
    res = annotate_images(str(images), str(tmp_path / "auto"), engine=crashy, actors=1, progress=False)
    # the poison image killed its actor, then its child process: quarantined; the run went on
    q = {Path(r["input"]).name: r for r in _quarantine(tmp_path / "auto" / "train")}
    assert set(q) == {"poison.png"} and q["poison.png"]["kind"] == "crashed_engine"
    assert "exit code 3" in q["poison.png"]["reason"]
    assert res["written"] == 3 and res["stats"]["counts"]["duplicates"] == 1 and res["status"] == "complete"
    keys = _keys(tmp_path / "auto" / "train")
    assert len(keys) == 3 and set(keys.values()) == {1}  # the copy was not written again


def _slow(seconds: float) -> dict:
    """ENGINE with every image taking ``seconds`` (crash_generator:Slow): a run a test can interfere with."""
    return {**ENGINE, "generator": {"name": "crash_generator:Slow", "params": {"n_segments": 80, "seconds": seconds}}}


def _engine_actor_pids() -> list[int]:
    """Pids of live engine actors, from the process table (Ray titles an actor's process after
    its class, "ray::MapWorker(MapBatches(EngineActor))..."; the state API would need a
    dashboard, which a private Ray lacks)."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if (
            cmd
            and cmd[0].startswith("ray::")
            and "EngineActor" in cmd[0]
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            pids.append(proc.pid)
    return pids


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_external_kills_of_the_actor_blame_no_image(ray_cluster, tmp_path):
    """Four quick kills of the only engine actor from outside: every image is still written once,
    none is quarantined, and the split is complete. Each image takes 0.5 s, so the run outlasts
    four actor lives even on a fast machine (24 plain images once finished after two kills)."""
    import threading

    images = tmp_path / "images"
    _many_photos(images, 24, side=128)
    kills: list[int] = []
    seen = set(_engine_actor_pids())  # an earlier test's actor may still be exiting: not ours

    def killer():
        deadline = time.time() + 300
        while len(kills) < 4 and time.time() < deadline:
            pids = [p for p in _engine_actor_pids() if p not in seen]
            if pids:
                time.sleep(1.0)
                seen.add(pids[0])
                try:
                    os.kill(pids[0], signal.SIGKILL)
                except ProcessLookupError:  # it exited on its own meanwhile: not a kill
                    continue
                kills.append(pids[0])
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = annotate_images(str(images), str(tmp_path / "auto"), engine=_slow(0.5), actors=1, progress=False)
    thread.join()
    assert len(kills) == 4, (kills, sorted(seen))
    assert _quarantine(tmp_path / "auto" / "train") == [] and res["status"] == "complete"
    keys = _keys(tmp_path / "auto" / "train")
    assert len(keys) == 24 and set(keys.values()) == {1}


def test_killed_run_then_rerun_finishes_the_job(ray_cluster, tmp_path):
    images = tmp_path / "images"
    n = 24
    _many_photos(images, n, side=128)
    out = tmp_path / "auto"
    # 0.15 s an image: the run is still going when the kill comes, even on a fast machine where
    # the first write task publishes eight shards in one burst
    cfg = {**_slow(0.15), "resources": {"num_cpus": 1, "batch_size": 1}}
    kill_annotation_driver(
        f"{str(images)!r}, {str(out)!r}, engine={cfg!r}, actors=1, max_count=1, "
        f"ray_address={ray_cluster!r}, progress=False",
        str(out / "train"),
    )
    split = out / "train"
    partial = len(list(split.glob("shard-*.tar")))
    assert 2 <= partial < n
    assert not (split / "dataset.json").exists()  # nothing committed: readers see no split yet
    res = annotate_images(str(images), str(out), engine=cfg, actors=1, max_count=1, progress=False)
    assert res["skipped"] >= partial and res["written"] == n - res["skipped"] and res["status"] == "complete"
    keys = _keys(split)
    assert len(keys) == n and set(keys.values()) == {1}


def _kill_the_ledger_once(split: Path, shards: int, seen: set[str], kills: list[int]) -> None:
    """SIGKILLs the process of the run's ledger actor (the named actor not in ``seen``) once
    ``split`` holds ``shards`` finished shards; records the pid in ``kills``."""
    deadline = time.time() + 300
    while time.time() < deadline:
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("unilseg-ledger-") and a["name"] not in seen
        ]
        if names and len(list(split.glob("shard-*.tar"))) >= shards:
            ledger = ray.get_actor(names[0], namespace="unilseg")
            os.kill(ray.get(ledger.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
            kills.append(names[0])
            return
        time.sleep(0.1)


def _one_line_error(res) -> str:
    """The command's one-line error. Ray's own notice that a worker died ("(raylet) A worker died
    or was killed ...", printed by Ray's error listener in the driver) may come beside it."""
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip() and "(raylet)" not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def test_a_killed_ledger_stops_the_run_in_one_line(ray_cluster, tmp_path):
    """kill -9 of the run's ledger mid-run: the command says in one line that it stopped early
    (it once ended in a traceback of the ledger's death, raised while saving the source index),
    the split is marked incomplete, and the next run finishes it with every image once."""
    import threading

    images = tmp_path / "images"
    n = 12
    _many_photos(images, n)
    split = tmp_path / "auto" / "train"
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(_slow(0.3)))  # 12 images x 0.3 s: the run outlasts the kill
    seen = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    kills: list[str] = []
    killer = threading.Thread(target=_kill_the_ledger_once, args=(split, 2, seen, kills), daemon=True)
    killer.start()
    res = CliRunner().invoke(
        main,
        [
            "annotate",
            str(images),
            "--out",
            str(tmp_path / "auto"),
            "--engine",
            str(config),
            "--max-count",
            "1",
            "--no-progress",
        ],
    )
    killer.join()
    assert kills, "the ledger was not killed while the run was in progress"
    line = _one_line_error(res)
    assert "stopped early" in line and "ledger actor died" in line and "marked incomplete" in line, line
    assert json.loads((split / "dataset.json").read_text())["status"] == "incomplete"
    again = annotate_images(
        str(images), str(tmp_path / "auto"), engine=_slow(0.3), actors=1, max_count=1, progress=False
    )
    assert again["status"] == "complete"
    keys = _keys(split)
    assert len(keys) == n and set(keys.values()) == {1}


def test_a_run_stopped_before_any_write_says_so_and_writes_nothing(ray_cluster, tmp_path, monkeypatch):
    """The ledger dies before the first image reaches it: one line, and no split (the commit of
    an incomplete split once failed on the folder no writer had made, with a traceback)."""
    import annotation_engine.driver as driver

    start = driver.start_ledger

    def dead_on_arrival(*args, **kwargs):
        ledger = start(*args, **kwargs)
        os.kill(ray.get(ledger.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
        return ledger

    monkeypatch.setattr(driver, "start_ledger", dead_on_arrival)
    images = _write_photos(tmp_path / "images", ["coffee"])
    res = CliRunner().invoke(main, ["annotate", str(images[0]), "--out", str(tmp_path / "auto"), "--no-progress"])
    line = _one_line_error(res)
    assert "ledger actor died" in line and "nothing was written" in line, line
    assert not (tmp_path / "auto").exists()


def test_a_rerun_left_with_only_unreadable_files(ray_cluster, tmp_path):
    """Files that cannot be read are quarantined again by every run (they have no content to
    mark done). A rerun with nothing else left once failed (KeyError: 'first_begin'); it now
    writes nothing, says so, and exits 0."""
    images = tmp_path / "images"
    _write_photos(images, ["coffee"])
    os.symlink(tmp_path / "gone.png", images / "dangling.png")
    out = tmp_path / "auto"
    first = annotate_images(str(images), str(out), engine=ENGINE, actors=1, progress=False)
    assert (first["written"], first["quarantined"]) == (1, 1)
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(ENGINE))
    res = CliRunner().invoke(
        main, ["annotate", str(images), "--out", str(out), "--engine", str(config), "--no-progress"]
    )
    assert res.exit_code == 0, (res.output, res.exception)
    assert "0 written, 1 already done, 1 quarantined" in res.output
    q = _quarantine(out / "train")
    assert [Path(r["input"]).name for r in q] == ["dangling.png"] and q[0]["kind"] == "unreadable"
    assert not list((out / "train").glob(".lock*"))


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
        assert why in _one_line_error(res)
    assert not (tmp_path / "out").exists()


def test_sam_tiny_hf_through_actors(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_CAPTIONER", str(save_tiny_blip(tmp_path / "blip")))
    images = tmp_path / "images"
    _write_photos(images, ["coffee", "chelsea"], side=128)
    res = annotate_images(str(images), str(tmp_path / "auto"), engine="sam-tiny-hf", actors=1, progress=False)
    assert res["written"] == 2, _quarantine(tmp_path / "auto" / "train")
    samples = list(ShardReader(tmp_path / "auto" / "train").samples(decode_images=False))
    targets = [t for s in samples for t in s.targets]
    assert targets and all(
        t.provenance["captioner"] == "hf" and t.provenance["generator"] == "sam" and "predicted_iou" in t.scores
        for t in targets
    )


def test_clear_errors_before_any_actor_starts(ray_cluster, tmp_path, monkeypatch):
    images = _write_photos(tmp_path / "images", ["coffee"])
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
