import pyarrow.parquet as pq
import pytest

from shard_fixtures import make_sample
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
    import pyarrow as pa

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
