"""shards.shard_file: tar members as tarfile writes them, hashed as written; the finisher thread."""

import hashlib
import tarfile
import threading

import pytest

from shards.shard_file import Finisher, ShardFile, member_header, tar_bytes, tarfile_header


def test_template_headers_equaltarfile_headers():
    import random

    rnd = random.Random(0)
    names = ["", "a.json", "x" * 100, "x" * 101, "k" * 60 + ".png", "é.jpg", "a/b.jpg"]
    names += ["".join(rnd.choice("abcXYZ019_-.") for _ in range(rnd.randint(1, 110))) for _ in range(500)]
    for name in names:
        for size in (0, 1, 511, 512, 513, rnd.randint(0, 10**9), 8**11 - 1, 8**11):
            assert member_header(name, size) == tarfile_header(name, size), (name, size)


def test_shard_file_is_a_tar_hashed_as_written(tmp_path):
    f = ShardFile(tmp_path / "s.tar")
    f.add([("k.json", b"{}"), ("k.jpg", b"x" * 600)])
    f.close()
    data = (tmp_path / "s.tar").read_bytes()
    assert f.size == len(data) == tar_bytes(512 + 512 + 512 + 1024)
    assert f.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    with tarfile.open(tmp_path / "s.tar") as tf:
        assert tf.getnames() == ["k.json", "k.jpg"] and tf.extractfile("k.jpg").read() == b"x" * 600


def test_finisher_runs_jobs_in_order_and_stops_at_the_first_error():
    done, abandoned, release = [], [], threading.Event()

    def finish(job):
        release.wait()
        if job == 2:
            raise OSError("disk full")
        done.append(job)

    f = Finisher(finish, abandoned.append)
    f.submit(1)
    release.set()
    f.submit(2)
    f.submit(3)
    with pytest.raises(RuntimeError, match="disk full"):
        f.wait()
    with pytest.raises(RuntimeError, match="finishing a shard failed"):
        f.submit(4)
    f.stop()
    assert done == [1] and abandoned == [2, 3, 4]
