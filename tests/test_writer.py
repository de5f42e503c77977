import hashlib
import json
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from shard_fixtures import make_sample

from shards.format import FormatError
from shards.manifest import read_dataset_json, read_manifest
from shards.reader import ShardReader
from shards.verify import verify_split
from shards.writer import ShardWriter

ROOT = Path(__file__).resolve().parents[1]


def test_write_read_round_trip_is_lossless(tmp_path):
    samples = [make_sample(i) for i in range(7)]
    with ShardWriter(tmp_path / "train", max_count=3) as w:
        for s in samples:
            assert w.write(s)
    names = sorted(p.name for p in (tmp_path / "train").glob("*.tar"))
    assert names == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    got = list(ShardReader(tmp_path / "train").samples())
    assert [g.key for g in got] == [s.key for s in samples]
    for g, s in zip(got, samples):
        assert g.image_bytes == s.image_bytes and g.image == s.image
        assert g.targets == s.targets
        assert np.array_equal(g.targets[0].mask_array(), s.targets[0].mask_array())
        assert g.targets[1].mask_array() is None


def test_plain_webdataset_and_tar_read_the_shards(tmp_path):
    with ShardWriter(tmp_path / "s", max_count=10) as w:
        for i in range(4):
            w.write(make_sample(i))
    url = str(tmp_path / "s" / "shard-000000.tar")
    ds = wds.WebDataset(url, shardshuffle=False).decode("rgb8")
    recs = list(ds)
    assert len(recs) == 4 and recs[0]["png"].shape == (24, 32, 3) and recs[0]["json"]["targets"][0]["texts"]
    out = subprocess.run(["tar", "tf", url], capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == 8 and all(n.count(".") == 1 for n in out)


def test_manifest_and_dataset_json(tmp_path):
    with ShardWriter(tmp_path / "s", max_count=2) as w:
        for i in range(5):
            w.write(make_sample(i))
    info = read_dataset_json(tmp_path / "s")
    assert info["status"] == "complete" and info["counts"]["samples"] == 5 and info["counts"]["targets"] == 10
    assert info["counts"]["by_task"] == {"gres": 5, "res": 5}
    m = read_manifest(tmp_path / "s")
    assert m.num_rows == 10
    assert set(m.column("shard").to_pylist()) == {s["name"] for s in info["shards"]}
    row = m.slice(0, 1).to_pylist()[0]
    assert row["text"] == "thing 0" and row["texts"] == ["thing 0", "object number 0"] and row["area"] > 0
    assert dict(row["scores"]) == {"iou": 0.5}


def test_byte_limit_and_deterministic_output(tmp_path):
    for run in ("a", "b"):
        with ShardWriter(tmp_path / run, max_count=100, max_bytes=21000) as w:
            for i in range(6):
                w.write(make_sample(i))
    a = read_dataset_json(tmp_path / "a")["shards"]
    assert len(a) > 1 and all(s["bytes"] <= 21000 for s in a) and max(s["samples"] for s in a) > 1
    assert a == read_dataset_json(tmp_path / "b")["shards"]  # same input -> identical shards


def test_duplicate_keys_are_skipped_and_invalid_samples_raise(tmp_path):
    with ShardWriter(tmp_path / "s") as w:
        assert w.write(make_sample(0))
        assert not w.write(make_sample(0))
        bad = make_sample(1)
        bad.targets[0].texts = []
        with pytest.raises(FormatError):
            w.write(bad)
        w.quarantine("img1.png", "bad text")
        w.quarantine("img1.png", "bad text")  # recorded once
    lines = (tmp_path / "s" / "quarantine.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["reason"] == "bad text"


def test_reopening_appends_and_skips(tmp_path):
    with ShardWriter(tmp_path / "s", max_count=2) as w:
        for i in range(3):
            w.write(make_sample(i))
    with ShardWriter(tmp_path / "s", max_count=2) as w:
        assert [w.write(make_sample(i)) for i in range(5)] == [False, False, False, True, True]
    assert [s.key for s in ShardReader(tmp_path / "s").samples(False)] == [make_sample(i).key for i in range(5)]
    assert verify_split(tmp_path / "s").ok


def test_second_writer_on_same_split_is_refused(tmp_path):
    with ShardWriter(tmp_path / "s"):
        with pytest.raises(RuntimeError, match="another writer"):
            ShardWriter(tmp_path / "s")


KILLER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from shard_fixtures import make_sample
    from shards.writer import ShardWriter
    w = ShardWriter(sys.argv[1], max_count=3)
    for i in range(10):
        w.write(make_sample(i))
        if i == 7:  # mid-shard: shards 0 and 1 finished, shard 2 half written
            w.flush()
            w._file.flush()
            os.kill(os.getpid(), 9)
""")


def test_killed_writer_leaves_no_half_shard_and_rerun_completes(tmp_path):
    split = tmp_path / "s"
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    proc = subprocess.run([sys.executable, str(script), str(split)], capture_output=True)
    assert proc.returncode == -9
    assert sorted(p.name for p in split.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert list(split.glob("*.tmp"))  # the half shard exists only under a temp name
    rep = verify_split(split)
    assert rep.ok, rep.errors
    assert any("interrupted" in w for w in rep.warnings)
    assert len(list(ShardReader(split).samples(False))) == 6
    with ShardWriter(split, max_count=3) as w:
        results = [w.write(make_sample(i)) for i in range(10)]
    assert results == [False] * 6 + [True] * 4
    assert not list(split.glob("*.tmp"))
    keys = [s.key for s in ShardReader(split).samples(False)]
    assert keys == [make_sample(i).key for i in range(10)]
    assert verify_split(split).ok and not verify_split(split).warnings


def test_shards_are_byte_identical_to_webdataset_tarwriter(tmp_path):
    samples = [make_sample(i) for i in range(5)]
    samples[1].key = "k" * 120  # a name over tar's 100 characters needs a PAX header
    samples[2].targets[0].texts = ["le chat gris é"]
    with ShardWriter(tmp_path / "s", max_count=10) as w:
        for s in samples:
            w.write(s)
    with wds.TarWriter(str(tmp_path / "plain.tar"), mtime=0) as tw:
        for s in samples:
            tw.write(s.to_wds())
    ours = (tmp_path / "s" / "shard-000000.tar").read_bytes()
    assert ours == (tmp_path / "plain.tar").read_bytes()
    entry = read_dataset_json(tmp_path / "s")["shards"][0]
    assert entry["bytes"] == len(ours) and entry["sha256"] == hashlib.sha256(ours).hexdigest()
    with tarfile.open(tmp_path / "s" / "shard-000000.tar") as tf:
        assert tf.getnames()[2:4] == ["k" * 120 + ".json", "k" * 120 + ".png"]


def test_columnar_manifest_rows_equal_the_row_dicts(tmp_path):
    import pyarrow as pa

    from shards.manifest import MANIFEST_SCHEMA, ManifestRows

    def sample_rows(sample, shard, areas):  # one dict per row: the plain way ManifestRows must match
        img = sample.image
        return [
            {
                "key": sample.key,
                "shard": shard,
                "target_index": i,
                "image_id": img.id,
                "image_sha256": img.sha256,
                "image_source": img.source,
                "width": img.width,
                "height": img.height,
                "source": t.source,
                "task": t.task,
                "granularity": t.granularity,
                "text": t.texts[0],
                "texts": list(t.texts),
                "area": area,
                "has_mask": t.mask is not None,
                "scores": [(k, float(v)) for k, v in t.scores.items()],
                "engine_version": t.provenance.get("engine_version"),
            }
            for i, (t, area) in enumerate(zip(sample.targets, areas))
        ]

    samples = [make_sample(i) for i in range(4)]
    samples[1].targets[0].scores = {}
    samples[2].targets[1].provenance = {"engine_version": "v7"}
    rows, cols = [], ManifestRows()
    for i, s in enumerate(samples):
        areas = [i + 1, 0]
        rows += sample_rows(s, f"shard-{i}", areas)
        cols.add(s, f"shard-{i}", areas)
    assert len(cols) == len(rows) == 8
    want = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    assert cols.table().equals(want)
    cols.write(str(tmp_path / "p.parquet"))
    assert pq.read_table(tmp_path / "p.parquet").to_pylist() == want.to_pylist()


def test_next_shard_is_written_while_the_full_one_is_finished(tmp_path, monkeypatch):
    started, release = threading.Event(), threading.Event()
    finish = ShardWriter._finish_job

    def slow_finish(self, job):
        started.set()
        release.wait(10)  # a synchronous finish would block write() here, then fail below
        finish(self, job)

    monkeypatch.setattr(ShardWriter, "_finish_job", slow_finish)
    split = tmp_path / "s"
    with ShardWriter(split, max_count=3) as w:
        for i in range(5):  # shard 0 is full after 3: samples 3 and 4 go to shard 1 meanwhile
            w.write(make_sample(i))
        assert started.wait(10) and not (split / "shard-000000.tar").exists()
        release.set()
    assert [s.key for s in ShardReader(split).samples(False)] == [make_sample(i).key for i in range(5)]
    assert verify_split(split).ok


def test_finish_error_is_raised_and_no_later_shard_is_renamed(tmp_path, monkeypatch):
    from shards.manifest import ManifestRows

    write_part = ManifestRows.write

    def failing_write(self, loc, *args, **kw):
        if "shard-000001" in str(loc):
            raise OSError("disk full")
        write_part(self, loc, *args, **kw)

    monkeypatch.setattr(ManifestRows, "write", failing_write)
    split = tmp_path / "s"
    with pytest.raises(RuntimeError, match="finishing a shard failed: disk full"):
        with ShardWriter(split, max_count=2) as w:
            for i in range(9):
                w.write(make_sample(i))
    assert sorted(p.name for p in split.glob("shard-*.tar")) == ["shard-000000.tar"]
    assert read_dataset_json(split)["status"] == "incomplete"
    monkeypatch.setattr(ManifestRows, "write", write_part)
    with ShardWriter(split, max_count=2) as w:  # the lock was released; the rest is redone
        assert [w.write(make_sample(i)) for i in range(9)] == [False] * 2 + [True] * 7
    assert len(list(ShardReader(split).samples(False))) == 9 and verify_split(split).ok


PENDING_KILLER = textwrap.dedent("""
    import os, sys, threading
    sys.path[:0] = [{root!r}, {tests!r}]
    from shard_fixtures import make_sample
    from shards.manifest import ManifestRows
    from shards.writer import ShardWriter
    write_part, parked = ManifestRows.write, threading.Event()

    def park_after_part(self, loc, *args, **kw):  # shard 1's part is on disk, its tar not renamed yet
        write_part(self, loc, *args, **kw)
        if "shard-000001" in str(loc):
            parked.set()
            threading.Event().wait()

    ManifestRows.write = park_after_part
    w = ShardWriter(sys.argv[1], max_count=3)
    for i in range(8):  # shard 1 full after sample 5; shard 2 half written
        w.write(make_sample(i))
    parked.wait()
    w._file.flush()
    os.kill(os.getpid(), 9)
""")


def test_writer_killed_with_a_finish_pending_is_redone(tmp_path):
    split = tmp_path / "s"
    script = tmp_path / "killer.py"
    script.write_text(PENDING_KILLER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    proc = subprocess.run([sys.executable, str(script), str(split)], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert sorted(p.name for p in split.glob("shard-*.tar")) == ["shard-000000.tar"]
    assert (split / "_parts" / "shard-000001.tar.parquet").exists()  # orphan part of the pending shard
    assert sorted(p.name for p in split.glob("*.tmp")) == ["shard-000001.tar.tmp", "shard-000002.tar.tmp"]
    assert len(list(ShardReader(split).samples(False))) == 3
    with ShardWriter(split, max_count=3) as w:
        assert [w.write(make_sample(i)) for i in range(10)] == [False] * 3 + [True] * 7
    assert not list(split.glob("*.tmp"))
    parts = sorted(p.name for p in (split / "_parts").iterdir())
    assert parts == [f"shard-00000{i}.tar.parquet" for i in range(4)]
    assert [s.key for s in ShardReader(split).samples(False)] == [make_sample(i).key for i in range(10)]
    rep = verify_split(split)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
