"""The ledger in partitions: calls routed by content and by listing partition give the answers of
one ledger (duplicates across partitions, done images, the source index); and a partition killed
mid-run stops the run in one line, after which the next run gives the single-process dataset."""

import hashlib
import json
import os
import signal
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from driver_fixtures import ENGINE, many_photos, split_keys

import annotation_engine.ledger_group as ledger_group
from annotation_engine.driver import RunStopped, annotate_images
from annotation_engine.engine import Engine, sample_key
from annotation_engine.ledger import DONE, DUPLICATE, GO, Ledger
from annotation_engine.ledger_group import LedgerGroup
from annotation_engine.source_index import read_index
from shards.images import prepare_image
from shards.layout import DATASET_JSON, MANIFEST
from shards.manifest import MANIFEST_SCHEMA
from shards.reader import ShardReader


class _Method:
    def __init__(self, fn):
        self.remote = fn


class _Handle:
    """A plain Ledger behind the ``handle.method.remote(...)`` calls of an actor handle."""

    def __init__(self, ledger):
        self.ledger = ledger

    def __getattr__(self, name):
        return _Method(getattr(self.ledger, name))


def _group(split, n, monkeypatch, version="v1"):
    monkeypatch.setattr(ledger_group.ray, "get", lambda refs: refs)
    return LedgerGroup([_Handle(Ledger(split, None, version, (i, n))) for i in range(n)])


def _sha(i):
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_partitions_answer_as_one_ledger(tmp_path, monkeypatch):
    split = str(tmp_path)
    done = [_sha(i) for i in range(20)]
    rows = [{"key": s[:24], "image_sha256": s, "engine_version": "v1"} for s in done]
    pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), tmp_path / MANIFEST)
    (tmp_path / DATASET_JSON).write_text(json.dumps({"status": "complete", "shards": []}))
    group = _group(split, 4, monkeypatch)
    listed = [(f"/p{i % 3}/{i}.png", 10, "e", f"part{i % 3}") for i in range(40)]
    assert group.lookup(listed) == [None] * 40
    claims = [(path, _sha(i), 10, "e", True, part) for i, (path, _, _, part) in enumerate(listed)]
    claims.append(("/copy.png", _sha(30), 10, "e", True, "part0"))  # same bytes as /p0/30.png
    verdicts = group.claim(claims)
    assert verdicts == [DONE] * 20 + [GO] * 20 + [DUPLICATE]
    assert group.claim(claims[25:26]) == [GO]  # a retried task claims again
    assert group.begin_many([_sha(25), _sha(26)]) == [("go", 0), ("go", 0)]
    group.end_many([(_sha(25), "annotated")])
    p = group.progress()
    assert (p["listed"], p["read"], p["skipped"], p["duplicates"], p["annotated"]) == (40, 42, 20, 1, 1)
    group.save_index()
    assert len(read_index(split)) == 41
    owners = [s["index_rows"] for s in group.stats()]
    assert sum(owners) == 41  # each listing partition in the partition that owns it
    again = _group(split, 2, monkeypatch)  # another partitioning reads the same files
    assert group.lookup(listed[:2]) == [_sha(0), _sha(1)] and again.lookup(listed[:2]) == [_sha(0), _sha(1)]


def _slow(seconds):
    return {**ENGINE, "generator": {"name": "crash_generator:Slow", "params": {"n_segments": 80, "seconds": seconds}}}


def _kill_a_partition(split, seen, kills):
    """SIGKILLs a ledger partition other than the first once the split holds two shards."""
    deadline = time.time() + 240
    while time.time() < deadline and not kills:
        names = [
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("unilseg-ledger-") and a["name"].count("-") == 3 and a["name"] not in seen
        ]
        if names and len(list(split.glob("shard-*.tar"))) >= 2:
            victim = ray.get_actor(sorted(names)[-1], namespace="unilseg")
            os.kill(ray.get(victim.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
            kills.append(names[-1])
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_partition_then_a_rerun_give_the_single_process_dataset(ray_cluster, tmp_path):
    images, out = tmp_path / "images", tmp_path / "auto"
    many_photos(images, 10)
    cfg = _slow(0.3)  # 10 images x 0.3 s: the run outlasts the kill
    engine = Engine(ENGINE)  # the same targets: Slow only sleeps first
    reference = {}
    for path in sorted(images.iterdir()):
        img = prepare_image(path.read_bytes())
        reference[sample_key(img.sha256, Engine(cfg).version)] = [t.texts for t in engine.annotate(img.rgb)]
    seen = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    kills: list[str] = []
    killer = threading.Thread(target=_kill_a_partition, args=(out / "train", seen, kills), daemon=True)
    killer.start()
    with pytest.raises(RunStopped, match="ledger actor died.*marked incomplete"):
        annotate_images(str(images), str(out), engine=cfg, actors=1, ledgers=3, max_count=1, progress=False)
    killer.join()
    assert kills
    res = annotate_images(str(images), str(out), engine=cfg, actors=1, ledgers=3, max_count=1, progress=False)
    assert res["status"] == "complete" and res["skipped"] >= 2
    keys = split_keys(out / "train")
    assert set(keys) == set(reference) and set(keys.values()) == {1}
    got = {s.key: [t.texts for t in s.targets] for s in ShardReader(out / "train").samples(decode_images=False)}
    assert got == reference
