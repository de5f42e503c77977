import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
import webdataset as wds

from shard_fixtures import make_sample
from shards.reader import ChecksumError, ShardReader
from shards.writer import ShardWriter


@pytest.fixture
def split(tmp_path):
    with ShardWriter(tmp_path / "s", max_count=2) as w:
        for i in range(5):
            w.write(make_sample(i))
    return tmp_path / "s"


def test_samples_and_targets(split):
    r = ShardReader(split)
    assert len(r) == 5
    samples = list(r.samples())
    assert samples[0].rgb.shape == (24, 32, 3) and samples[0].rgb.dtype == np.uint8
    items = list(r.targets(decode_images=False))
    assert len(items) == 10 and items[1][1] == 1 and items[1][2].mask is None
    assert all(s.rgb is None for s, _, _ in items)


def test_checksum_mismatch_is_detected(split):
    shard = split / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF  # inside the first sample's PNG payload (json header+data, png header before it)
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="shard-000001"):
        list(ShardReader(split).samples(decode_images=False))
    # unchecked reading goes through (the corruption is in image bytes here)
    assert len(list(ShardReader(split, check_checksums=False).samples(decode_images=False))) == 5


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        ShardReader(tmp_path)


def _tar_of_every_kind(path, fmt):
    """A tar with regular members of many sizes and names, a directory, a symlink, meta files."""
    long_dir = "d" * 90 + "/" + "e" * 50  # over 100 characters: ustar prefix, GNU L record or PAX path
    files = {"a.json": b"{}", "empty.txt": b"", "k512.png": bytes(range(256)) * 2,
             "big.jpg": os.urandom(3000), long_dir + ".png": b"long",
             "__meta__": b"m", "__x__/y.txt": b"m", "s/k.cls": b"7"}
    if fmt != tarfile.USTAR_FORMAT:
        files["é chat.jpg"] = b"unicode"
    with tarfile.open(path, "w", format=fmt) as tf:
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "a.json"
        tf.addfile(link)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("block", [700, 1 << 20])
def test_tar_members_equal_tarfile_stream_mode(tmp_path, monkeypatch, fmt, block):
    import shards.reader as reader

    monkeypatch.setattr(reader, "_BLOCK", block)  # 700: every member and header crosses a block
    path = tmp_path / "t.tar"
    _tar_of_every_kind(path, fmt)
    with tarfile.open(path, "r|") as tf:
        want = [(m.name, tf.extractfile(m).read()) for m in tf if m.isreg()]
    tar = reader._TarMembers(str(path), hashed=True)
    assert list(tar) == want and len(want) >= 8
    assert tar.drain_hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    tar.close()


def test_raw_records_equal_webdatasets(tmp_path):
    from shards.reader import raw_pipeline

    path = tmp_path / "t.tar"
    _tar_of_every_kind(path, tarfile.PAX_FORMAT)
    want = list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))
    for rec in want:
        del rec["__local_path__"]  # WebDataset's opener adds it for local files; we never did
    got = list(raw_pipeline([str(path)]))
    assert got == want and len(got) >= 5


def test_corrupt_or_truncated_shards_raise(split):
    shard = split / "shard-000000.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[:1536])  # ends inside the first member's data
    with pytest.raises(tarfile.ReadError, match="unexpected end"):
        list(ShardReader(split, check_checksums=False).raw())
    shard.write_bytes(data[:100] + b"x" + data[101:])  # a header byte changed
    with pytest.raises(tarfile.ReadError, match="bad checksum"):
        list(ShardReader(split, check_checksums=False).raw())
