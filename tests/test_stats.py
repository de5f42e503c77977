from shard_fixtures import make_sample
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
