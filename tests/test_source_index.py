"""The source index in files per listing partition: loaded when first asked about, saved only
when changed, dropped (saved first) past a row budget; an old single-file index still read and
migrated."""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from annotation_engine.source_index import (
    INDEX_SCHEMA,
    IndexPartitions,
    partition_id,
    read_index,
    read_part,
    remove_legacy,
)
from shards.layout import SOURCE_INDEX, SOURCE_INDEX_DIR


def test_partitions_load_lazily_save_what_changed_and_drop_the_oldest(tmp_path):
    parts = IndexPartitions(str(tmp_path), max_rows=3)
    for i in range(3):
        parts.add("p1", f"/a/{i}.png", (i, "v", f"sha{i}"))
    assert parts.saved_files == 0 and not (tmp_path / SOURCE_INDEX_DIR).exists()  # nothing written yet
    parts.add("p2", "/b/0.png", (1, "v", "shb"))  # over budget: p1 saved and dropped
    assert list(parts.loaded) == ["p2"] and parts.saved_files == 1
    assert read_part(str(tmp_path), "p1")["/a/2.png"] == (2, "v", "sha2")
    assert parts.lookup("p1", "/a/1.png") == (1, "v", "sha1")  # loaded again from its file; p2 dropped in turn
    assert list(parts.loaded) == ["p1"] and parts.saved_files == 2
    assert parts.save() == 3 and parts.saved_files == 2  # nothing changed since
    again = IndexPartitions(str(tmp_path), max_rows=100)
    assert again.lookup("p2", "/b/0.png") == (1, "v", "shb") and again.save() == 1
    assert again.saved_files == 0  # an unchanged index is never rewritten
    assert len(read_index(str(tmp_path))) == 4


def test_an_old_single_file_index_is_read_and_migrated(tmp_path):
    old = pa.table(
        [pa.array(["/a/0.png", "/b/0.png"]), pa.array([1, 2], pa.int64()), pa.array(["v", "v"]), pa.array(["x", "y"])],
        schema=INDEX_SCHEMA,
    )
    buf = io.BytesIO()
    pq.write_table(old, buf)
    (tmp_path / SOURCE_INDEX).write_bytes(buf.getvalue())
    parts = IndexPartitions(str(tmp_path), max_rows=100)
    assert parts.lookup("pa", "/a/0.png") == (1, "v", "x") and parts.lookup("pa", "/a/9.png") is None
    parts.save()
    assert read_part(str(tmp_path), "pa") == {"/a/0.png": (1, "v", "x")}  # migrated under its partition
    remove_legacy(str(tmp_path))
    assert not (tmp_path / SOURCE_INDEX).exists() and read_index(str(tmp_path)) == {"/a/0.png": (1, "v", "x")}


def test_partition_ids_are_stable_and_distinct():
    assert partition_id("tree", ("/a/x", "/a")) == partition_id("tree", ("/a/x", "/a"))
    assert (
        len({partition_id("tree", ("/a/x", "/a")), partition_id("tree", ("/a/y", "/a")), partition_id("flat", "/a")})
        == 3
    )
