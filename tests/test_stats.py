import pytest
from shard_fixtures import make_sample

from common.errors import ShardError
from shards.stats import dataset_stats, format_stats
from shards.writer import ShardWriter


def test_counts_by_task_and_granularity(tmp_path):
    with ShardWriter(tmp_path / "ds" / "val") as w:
        for i in range(3):
            w.write(make_sample(i))
        w.quarantine("x.jpg", "broken")
    stats = dataset_stats(tmp_path / "ds")
    s = stats[str(tmp_path / "ds" / "val")]
    assert s["images"] == 3 and s["targets"] == 6 and s["no_target"] == 3 and s["quarantined"] == 1
    assert s["by_task"] == {"gres": 3, "res": 3} and s["by_granularity"] == {"group": 3, "instance": 3}
    assert "by task: gres=3  res=3" in format_stats(stats)


def _split(tmp_path):
    with ShardWriter(tmp_path / "ds" / "val", max_count=1) as w:
        for i in range(3):
            w.write(make_sample(i))
    return tmp_path / "ds" / "val"


def test_a_missing_shard_makes_the_split_damaged_not_smaller(tmp_path):
    split = _split(tmp_path)
    (split / "shard-000001.tar").unlink()
    with pytest.raises(
        ShardError,
        match=r"val: damaged: 1 of the shards dataset.json lists are missing "
        r"\(shard-000001.tar\)",
    ):
        dataset_stats(tmp_path / "ds")


def test_a_missing_manifest_makes_the_split_damaged(tmp_path):
    split = _split(tmp_path)
    (split / "manifest.parquet").unlink()
    with pytest.raises(ShardError, match="manifest.parquet is missing"):
        dataset_stats(split)
