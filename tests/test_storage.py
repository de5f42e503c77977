"""Locations: local paths and fsspec URLs through the same functions; shards on S3 (moto)."""

import pytest
from s3_fixtures import s3_bucket, s3_options  # noqa: F401 (fixtures)
from shard_fixtures import make_sample

from shards import storage
from shards.commit import commit_split
from shards.layout import find_splits, resolve_split_dir
from shards.manifest import read_dataset_json, read_manifest, read_quarantine
from shards.reader import ShardReader
from shards.stats import dataset_stats
from shards.verify import verify_split
from shards.writer import ShardWriter


def _roots(tmp_path, request):
    return {
        "local": str(tmp_path / "root"),
        "file": "file://" + str(tmp_path / "froot"),
        "memory": f"memory://unilseg-{request.node.name}",
        # a Location: every path under it carries its options (memory:// takes any and ignores them)
        "location": storage.Location(f"memory://unilseg-loc-{request.node.name}", {"secret": "s3cr3t"}),
    }


@pytest.mark.parametrize("kind", ["local", "file", "memory", "location"])
def test_the_same_functions_everywhere(tmp_path, request, kind):
    root = _roots(tmp_path, request)[kind]
    storage.makedirs(storage.join(root, "d"))
    loc = storage.join(root, "d", "x.bin")
    assert not storage.exists(loc) and storage.name(loc) == "x.bin" and storage.parent(loc) == storage.join(root, "d")
    storage.write_bytes(loc, b"abc")
    storage.append_text(loc, "de")
    assert storage.read_bytes(loc) == b"abcde" and storage.size(loc) == 5
    assert storage.sha256(loc) == "36bbe50ed96841d10443bcb670d6554f0a34b761be67ec9c4a8ad2c0c44ca42c"
    with storage.staged_output(storage.join(root, "d", "y.bin")) as staged:
        staged.write_bytes(b"staged")
        assert not storage.exists(storage.join(root, "d", "y.bin"))  # visible only once published
    assert storage.read_bytes(storage.join(root, "d", "y.bin")) == b"staged"
    assert storage.listdir(storage.join(root, "d")) == ["x.bin", "y.bin"]
    assert storage.find(root, "y.bin") == [storage.join(root, "d", "y.bin")]
    storage.remove(loc)
    storage.remove(loc)  # removing what is not there is fine
    assert storage.listdir(storage.join(root, "d")) == ["y.bin"] and storage.listdir(storage.join(root, "no")) == []
    assert storage.is_local(root) == (kind not in ("memory", "location"))
    if kind == "location":
        assert storage.options_of(storage.find(root, "y.bin")[0]) == {"secret": "s3cr3t"}


def _write(split, n=7, **kw):
    with ShardWriter(split, max_count=3, **kw) as w:
        for i in range(n):
            assert w.write(make_sample(i))
        w.quarantine("bad.jpg", "unreadable")


@pytest.mark.parametrize("reach", ["environment", "options"])
def test_round_trip_on_s3(request, reach):
    """Reached through the environment's credentials, or only through a Location's options
    (no endpoint or credentials in the environment: a call that dropped them would fail)."""
    if reach == "environment":
        root = request.getfixturevalue("s3_bucket")
    else:
        bucket, options = request.getfixturevalue("s3_options")
        root = storage.Location(bucket, options)
    ds = storage.join(root, "ds")
    split = storage.join(ds, "train")
    _write(split)
    info = read_dataset_json(split)
    assert info["status"] == "complete" and [s["name"] for s in info["shards"]] == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    got = list(ShardReader(split).samples())
    want = [make_sample(i) for i in range(7)]
    assert [g.key for g in got] == [s.key for s in want]
    assert all(g.image_bytes == s.image_bytes and g.targets == s.targets for g, s in zip(got, want))
    assert read_manifest(split).num_rows == 14 and [r["input"] for r in read_quarantine(split)] == ["bad.jpg"]
    rep = verify_split(split)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    assert resolve_split_dir(ds) == split and find_splits(ds) == [split]
    assert dataset_stats(ds)[str(split)]["images"] == 7  # keyed by URL
    # a second run skips what is there and adds the rest
    with ShardWriter(split, max_count=3) as w:
        assert [w.write(make_sample(i)) for i in range(9)] == [False] * 7 + [True] * 2
    assert [s.key for s in ShardReader(split).samples(False)] == [make_sample(i).key for i in range(9)]
    assert not storage.exists(storage.join(split, "shard-000002.tar.tmp"))  # staging stays local
    if reach == "options":  # no file written holds the secret
        fs, path = storage.filesystem(root)
        assert all(options["secret"].encode() not in fs.cat_file(f) for f in fs.find(path))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_parallel_writers_then_one_commit(tmp_path, request, kind):
    root = str(tmp_path) if kind == "local" else request.getfixturevalue("s3_bucket")
    split = storage.join(root, "ds", "train")
    for writer, first in (("a", 0), ("b", 10)):
        with ShardWriter(split, max_count=2, writer_id=writer, commit=False) as w:
            for i in range(first, first + 3):
                w.write(make_sample(i))
            w.quarantine(f"bad-{writer}.jpg", "unreadable")
    assert not storage.exists(storage.join(split, "dataset.json"))  # nothing is readable before the commit
    doc = commit_split(split)
    assert [s["name"] for s in doc["shards"]] == [
        "shard-a-000000.tar",
        "shard-a-000001.tar",
        "shard-b-000000.tar",
        "shard-b-000001.tar",
    ]
    assert doc["counts"]["samples"] == 6 and doc["counts"]["quarantined"] == 2
    keys = sorted(s.key for s in ShardReader(split).samples(False))
    assert keys == sorted(make_sample(i).key for i in [0, 1, 2, 10, 11, 12])
    assert sorted(r["input"] for r in read_quarantine(split)) == ["bad-a.jpg", "bad-b.jpg"]
    rep = verify_split(split)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)
    # a resumed writer of identity "a" skips every key the commit listed, whoever wrote it
    with ShardWriter(split, max_count=2, writer_id="a", commit=False) as w:
        assert not w.write(make_sample(11)) and w.write(make_sample(3))
    assert commit_split(split)["counts"]["samples"] == 7


def test_writer_identity_is_checked(tmp_path):
    with pytest.raises(ValueError, match="writer identity"):
        ShardWriter(tmp_path / "s", writer_id="a-b")


KILLED_CONVERT = """
import os, sys
sys.path[:0] = [{root!r}]
from shards.converters.convert import convert
from shards.manifest import ManifestRows

write_part = ManifestRows.write


def write_part_then_die(self, loc, *args, **kw):  # shard 2's part is uploaded, the shard is not
    write_part(self, loc, *args, **kw)
    if "shard-000002.tar" in str(loc):
        os.kill(os.getpid(), 9)


ManifestRows.write = write_part_then_die
convert("refcoco", sys.argv[1], sys.argv[2], "train", max_count=4, progress=False)
"""


def _dataset(split):
    """Everything a reader sees of a split: dataset.json's shards, their bytes, manifest rows, keys."""
    info = read_dataset_json(split)
    return {
        "shards": info["shards"],
        "counts": info["counts"],
        "bytes": {s["name"]: storage.read_bytes(storage.join(split, s["name"])) for s in info["shards"]},
        "manifest": read_manifest(split).to_pylist(),
        "keys": [s.key for s in ShardReader(split).samples(False)],
    }


def test_converter_killed_on_s3_resumes_to_the_same_dataset(s3_bucket, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from shards.converters.convert import convert
    from shards.synth import generate_shapes

    src = tmp_path / "src"
    generate_shapes(src, images=30, seed=0, size=64)
    whole = storage.join(s3_bucket, "whole")
    convert("refcoco", src, whole, "train", max_count=4, progress=False)  # uninterrupted reference

    out = storage.join(s3_bucket, "killed")
    split = storage.join(out, "train")
    script = tmp_path / "killed.py"
    script.write_text(KILLED_CONVERT.format(root=str(Path(__file__).resolve().parents[1])))
    proc = subprocess.run([sys.executable, str(script), str(src), out], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    # killed mid-way: two shards finished and listed, shard 2's part uploaded without its shard
    info = read_dataset_json(split)
    assert info["status"] == "incomplete" and [s["name"] for s in info["shards"]] == [
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    assert storage.exists(storage.join(split, "_parts", "shard-000002.tar.parquet"))
    assert not storage.exists(storage.join(split, "shard-000002.tar"))
    rep = verify_split(split)
    assert rep.ok, rep.errors
    assert any("orphan _parts/shard-000002.tar.parquet" in w for w in rep.warnings), rep.warnings
    assert len(list(ShardReader(split).samples(False))) == 8  # the orphan is never read
    assert read_manifest(split).num_rows == sum(s["targets"] for s in info["shards"])

    summary = convert("refcoco", src, out, "train", max_count=4, progress=False)
    assert summary["skipped"] == 8
    assert _dataset(split) == _dataset(storage.join(whole, "train"))
    rep = verify_split(split)
    assert rep.ok and not rep.warnings, (rep.errors, rep.warnings)


@pytest.mark.parametrize("kind", ["local", "file", "memory", "location"])
def test_copies_versions_and_staged_dirs_everywhere(tmp_path, request, kind):
    root = _roots(tmp_path, request)[kind]
    storage.makedirs(root)
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights")
    a, b = storage.join(root, "a.bin"), storage.join(root, "b.bin")
    assert not storage.isfile(a)
    assert storage.absolute(a) == (a if storage.is_url(a) else str((tmp_path / "root" / "a.bin").resolve()))
    storage.put_file(src, a)
    assert src.read_bytes() == b"weights" and storage.read_bytes(a) == b"weights" and storage.isfile(a)
    assert not storage.isfile(root)  # a directory or prefix is no file
    storage.copy(a, b)
    assert storage.read_bytes(b) == b"weights" and not any(n.endswith(".tmp") for n in storage.listdir(root))
    version = storage.file_version(a)
    assert version[0] == 7 and storage.file_version(a) == version
    storage.write_bytes(a, b"new weights")
    assert storage.file_version(a) != version and storage.read_bytes(b) == b"weights"  # b is a copy
    with pytest.raises(FileNotFoundError):
        storage.file_version(storage.join(root, "none"))

    report = storage.join(root, "report")
    with storage.staged_output_dir(report) as d:
        (d / "metrics.json").write_text("{}")
        (d / "sub").mkdir()
        (d / "sub" / "x.png").write_bytes(b"png")
    assert storage.read_bytes(storage.join(report, "metrics.json")) == b"{}"
    assert storage.read_bytes(storage.join(report, "sub", "x.png")) == b"png"
    with pytest.raises(RuntimeError), storage.staged_output_dir(storage.join(root, "failed")) as d:
        (d / "half.json").write_text("{")
        raise RuntimeError("stopped")
    # a local report dir is written in place; a remote one publishes nothing when the block fails
    assert storage.exists(storage.join(root, "failed", "half.json")) == storage.is_local(root)


def test_ray_style_pyarrow_filesystem_on_s3(s3_bucket):
    fs, path = storage.arrow_filesystem(storage.join(s3_bucket, "runs", "r"))
    assert path == "unilseg-test/runs/r"
    with fs.open_output_stream(path + "/train/marker") as f:
        f.write(b"ray")
    assert storage.read_bytes(storage.join(s3_bucket, "runs", "r", "train", "marker")) == b"ray"
    assert storage.arrow_filesystem("runs/r") == (None, "runs/r")  # local: Ray's own default
