"""What the manifest readers see after a writer was killed."""

import numpy as np
from conftest import encode

from shards.commit import finished_shards
from shards.format import ImageInfo, Sample, Target
from shards.manifest import DATASET_JSON, done_images, read_dataset_json, read_manifest, write_json_atomic
from shards.rle import mask_to_rle
from shards.writer import ShardWriter


def _sample(i: int) -> Sample:
    rgb = np.full((8, 8, 3), i, np.uint8)
    sha = f"{i:064x}"
    t = Target(
        ["the block"],
        mask_to_rle(np.ones((8, 8), bool)),
        "auto",
        "instance",
        "auto/x",
        provenance={"engine_version": "v1"},
    )
    return Sample(f"k{i}", ImageInfo(str(i), 8, 8, sha, "x"), encode(rgb), "png", [t])


def _kill(writer: ShardWriter) -> None:
    """What SIGKILL leaves once the full shards are finished: the open shard's temp file,
    no close; the lock is released."""
    writer.flush()
    writer._lock.release()


def test_killed_writer_finished_shards_are_seen(tmp_path):
    split = tmp_path / "s"
    w = ShardWriter(split, max_count=1)
    for i in range(3):
        w.write(_sample(i))  # shards 0 and 1 finished, 2 open
    _kill(w)
    assert read_dataset_json(split)["status"] == "incomplete"
    assert finished_shards(split) == ["shard-000000.tar", "shard-000001.tar"]
    assert read_manifest(split).num_rows == 2
    assert done_images(split) == {(f"{i:064x}", "v1") for i in range(2)}


def test_shard_finished_after_the_last_dataset_json_is_never_read_and_then_adopted(tmp_path):
    split = tmp_path / "s"
    with ShardWriter(split, max_count=1) as w:
        for i in range(2):
            w.write(_sample(i))
    # a second run finishes one shard and is killed before dataset.json lists it
    info = read_dataset_json(split)
    w = ShardWriter(split, max_count=1)
    w.write(_sample(2))
    w.write(_sample(3))  # finishes shard 2
    w.flush()
    write_json_atomic(split / DATASET_JSON, info)  # as if killed between the publication and the summary
    _kill(w)
    assert read_dataset_json(split)["status"] == "complete"
    assert finished_shards(split) == [f"shard-00000{i}.tar" for i in range(3)]
    # readers trust dataset.json only: the unlisted shard is not read
    assert (f"{2:064x}", "v1") not in done_images(split)
    assert read_manifest(split).num_rows == 2
    # the next writer adopts it (its keys are skipped), and the commit lists it
    with ShardWriter(split, max_count=1) as w:
        assert not w.write(_sample(2))
    assert read_manifest(split).num_rows == 3 and len(done_images(split)) == 3


def test_empty_split(tmp_path):
    assert done_images(tmp_path / "none") == set()
    assert read_manifest(tmp_path).num_rows == 0


def test_read_quarantine(tmp_path):
    from shards.manifest import read_quarantine

    assert read_quarantine(tmp_path / "none") == []
    with ShardWriter(tmp_path / "s") as w:
        w.quarantine("a.jpg", "unreadable", kind="x")
        w.quarantine("b.jpg", "no targets")
    recs = read_quarantine(tmp_path / "s")
    assert [(r["input"], r["reason"]) for r in recs] == [("a.jpg", "unreadable"), ("b.jpg", "no targets")]
    assert recs[0]["kind"] == "x" and read_dataset_json(tmp_path / "s")["counts"]["quarantined"] == 2
