import tarfile

import pyarrow.parquet as pq
import pytest
from shard_fixtures import extra_member, make_sample, rewrite_shard

from shards.manifest import PARTS_DIR
from shards.verify import find_splits, verify_split
from shards.writer import ShardWriter


@pytest.fixture
def split(tmp_path):
    with ShardWriter(tmp_path / "ds" / "train", max_count=2) as w:
        for i in range(5):
            w.write(make_sample(i))
    return tmp_path / "ds" / "train"


def test_clean_split_passes(split):
    rep = verify_split(split)
    assert rep.ok and not rep.warnings
    assert find_splits(split.parent) == [split]


def test_missing_shard(split):
    (split / "shard-000001.tar").unlink()
    rep = verify_split(split)
    assert not rep.ok and any("shard-000001.tar is missing" in e for e in rep.errors)


def test_checksum_mismatch(split):
    p = split / "shard-000002.tar"
    data = bytearray(p.read_bytes())
    data[3000] ^= 1
    p.write_bytes(bytes(data))
    assert any("checksum mismatch" in e for e in verify_split(split).errors)


def test_manifest_disagrees_with_shards(split):

    m = pq.read_table(split / "manifest.parquet")
    pq.write_table(m.slice(0, m.num_rows - 1), split / "manifest.parquet")
    errors = verify_split(split).errors
    assert any("manifest has 1 targets" in e for e in errors), errors


def test_unlisted_files_are_reported_as_orphans(split):
    (split / "shard-000009.tar").write_bytes(b"")  # a shard without its part
    (split / PARTS_DIR / "shard-000007.tar.parquet").write_bytes(b"")  # a part without its shard
    rep = verify_split(split)
    assert rep.ok
    assert any("orphan shard-000009.tar" in w for w in rep.warnings), rep.warnings
    assert any(f"orphan {PARTS_DIR}/shard-000007.tar.parquet" in w for w in rep.warnings), rep.warnings


def test_no_dataset_json(tmp_path):
    assert verify_split(tmp_path).errors == ["dataset.json is missing"]


# ----------------------------------------------------------------------------- damaged datasets (issue 16)


def test_deleted_manifest_is_rejected(split):
    (split / "manifest.parquet").unlink()
    errors = verify_split(split).errors
    assert len(errors) == 1 and "manifest.parquet is missing" in errors[0], errors


def test_counts_that_disagree_with_the_shards_are_rejected(split):
    import json

    doc = json.loads((split / "dataset.json").read_text())
    doc["counts"]["samples"] += 1
    doc["counts"]["by_task"]["res"] = 99
    (split / "dataset.json").write_text(json.dumps(doc))
    errors = verify_split(split).errors
    assert any("counts.samples is 6" in e and "5" in e for e in errors), errors
    assert any("counts.by_task" in e for e in errors), errors


def test_a_deleted_shard_is_reported_once(split):
    (split / "shard-000001.tar").unlink()
    errors = verify_split(split).errors
    assert errors == ["shard-000001.tar is missing"], errors


@pytest.mark.parametrize(
    "edit, problem",
    [
        (extra_member("k0.png", kind=tarfile.SYMTYPE, target="/etc/passwd"), "member 'k0.png' is a symlink"),
        (extra_member("/abs.json"), "member '/abs.json' has an absolute name"),
        (extra_member("../up.json"), "member '../up.json' has a '..' in its name"),
        (extra_member("dir/key.json"), "member 'dir/key.json' has a '/' in its key"),
        (extra_member("key.txt"), "member 'key.txt' is not KEY.jpg, KEY.png or KEY.json"),
    ],
)
def test_tampered_members_are_rejected_naming_shard_and_member(split, edit, problem):
    rewrite_shard(split, "shard-000001.tar", edit)  # dataset.json's checksum recomputed to match
    errors = verify_split(split).errors
    assert any(e.startswith("shard-000001.tar: ") and problem in e for e in errors), errors


def drop_first_json(members):
    first = next(i for i, (info, _) in enumerate(members) if info.name.endswith(".json"))
    return members[:first] + members[first + 1 :]


def test_sample_without_json_is_rejected(split):
    rewrite_shard(split, "shard-000000.tar", drop_first_json)
    errors = verify_split(split).errors
    assert any(e.startswith("shard-000000.tar: ") and "has no json" in e for e in errors), errors
