"""Listing as a Ray Data source (folders, globs, URLs, explicit files; problems reported, not
skipped) and read_and_hash (the source index spares reads; done and duplicate images dropped)."""

import os
import time

import pytest
import ray
from engine_fixtures import photo
from PIL import Image

from annotation_engine.ledger import Ledger
from annotation_engine.sources import ListingDatasource, images_fingerprint, list_partition, partitions, read_and_hash
from common.errors import MissingInputError


def _photos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(photo(n, 48)).save(folder / f"{n}.png")
    return [str(folder / f"{n}.png") for n in names]


def _rows(images):
    return [r for kind, arg in partitions(images) for r in list_partition(kind, arg)]


def test_folders_globs_urls_and_files(tmp_path):
    top = _photos(tmp_path / "a", ["coffee", "rocket"])
    sub = _photos(tmp_path / "a" / "sub", ["chelsea"])
    (tmp_path / "a" / "notes.txt").write_text("not an image: not listed from a folder")
    parts = partitions(str(tmp_path / "a"))
    assert parts == [("flat", str(tmp_path / "a")), ("tree", (str(tmp_path / "a" / "sub"), str(tmp_path / "a")))]
    rows = _rows(str(tmp_path / "a"))
    assert sorted(r[0] for r in rows) == sorted(top + sub) and all(r[1] > 0 and r[2] and not r[3] for r in rows)
    assert sorted(r[0] for r in _rows(str(tmp_path / "a" / "*.png"))) == sorted(top)
    assert sorted(r[0] for r in _rows(f"file://{tmp_path}/a")) == sorted(top + sub)  # file:// is local
    odd = tmp_path / "odd.dat"
    odd.write_bytes(b"x")
    assert [r[0] for r in _rows([str(odd)])] == [str(odd)]  # a named file is kept whatever its name
    with pytest.raises(MissingInputError, match="no image at"):
        partitions(str(tmp_path / "missing"))
    with pytest.raises(MissingInputError, match="no file matches"):
        partitions(str(tmp_path / "*.nothing"))


def test_problems_are_reported_not_skipped(tmp_path):
    _photos(tmp_path / "a", ["coffee"])
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")  # a folder that contains itself
    os.symlink(tmp_path / "gone.png", tmp_path / "a" / "dangling.png")
    rows = _rows(str(tmp_path / "a"))
    problems = {os.path.basename(r[0]): r[3] for r in rows if r[3]}
    assert "symlink loop" in problems["loop"] and problems["dangling.png"] == "broken symbolic link"
    assert [os.path.basename(r[0]) for r in rows if not r[3]] == ["coffee.png"]


def test_fingerprint_changes_with_the_files(tmp_path):
    _photos(tmp_path / "a", ["coffee"])
    before = images_fingerprint(str(tmp_path / "a"))
    time.sleep(0.01)
    _photos(tmp_path / "a", ["rocket"])
    assert images_fingerprint(str(tmp_path / "a")) != before
    assert images_fingerprint("s3://bucket/photos") == "s3://bucket/photos"


def test_read_and_hash_reads_only_what_it_must(ray_cluster, tmp_path):
    paths = _photos(tmp_path / "a", ["coffee", "rocket", "chelsea"])
    (tmp_path / "a" / "copy.png").write_bytes(open(paths[0], "rb").read())  # same bytes, another path
    ds = ray.data.read_datasource(ListingDatasource(str(tmp_path / "a")))
    batch = ds.take_batch(100, batch_format="numpy")
    ledger = ray.remote(Ledger).remote(str(tmp_path / "split"), [])
    out = read_and_hash(batch, ledger)
    assert len(out["path"]) == 3 and all(len(d) > 0 for d in out["data"])  # the copy is dropped
    progress = ray.get(ledger.progress.remote())
    assert (progress["read"], progress["duplicates"]) == (4, 1)
    ray.get(ledger.save_index.remote())
    # a new run over the unchanged folder, everything done: nothing is read
    done = list(out["sha256"])
    again = ray.remote(Ledger).remote(str(tmp_path / "split"), done)
    assert read_and_hash(batch, again)["path"] == []
    assert ray.get(again.progress.remote()).get("read", 0) == 0


def test_named_inputs_that_are_not_there_fail_before_anything_starts(tmp_path):
    """What the command line passes (a list): a missing folder, a symlink loop or a broken link
    named directly is one error here, in planning (they once became quarantined rows of a run
    that started Ray and committed an empty split)."""
    coffee = _photos(tmp_path / "a", ["coffee"])[0]
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    for named, why in [
        (tmp_path / "missing", "no such file or folder"),
        (tmp_path / "loop-a", "symbolic link loop"),
        (tmp_path / "dangling", "broken symbolic link"),
    ]:
        with pytest.raises(MissingInputError, match=f"no image at {named}: .*{why}"):
            partitions([str(named)])
        with pytest.raises(MissingInputError, match=why):
            partitions([coffee, str(named)])  # one missing among good ones: still an error
        with pytest.raises(MissingInputError, match=why):
            partitions(str(named))
    assert partitions([coffee, f"file://{coffee}"]) == [("files", [coffee, f"file://{coffee}"])]
