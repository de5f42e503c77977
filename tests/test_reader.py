import hashlib
import io
import os
import re
import tarfile

import numpy as np
import pytest
import webdataset as wds
from shard_fixtures import extra_member, make_sample, rewrite_shard

from common.errors import ShardError
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
    """A tar of valid samples (KEY.json + KEY.jpg|png) of many sizes, incl. keys over tar's
    100 characters where the format can hold them (GNU L record or PAX path)."""
    long_key = "k" * 130
    files = {
        "a.json": b"{}",
        "a.png": b"",
        "k512.json": b"[]",
        "k512.png": bytes(range(256)) * 2,
        "big.json": b"{}",
        "big.jpg": os.urandom(3000),
    }
    if fmt != tarfile.USTAR_FORMAT:
        files.update({long_key + ".json": b"{}", long_key + ".png": b"long"})
    with tarfile.open(path, "w", format=fmt) as tf:
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
    assert list(tar) == want and len(want) >= 6
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
    assert got == want and len(got) == 4


def test_non_regular_members_are_refused(tmp_path):
    from shards.reader import _TarMembers

    for kind, what in [
        (tarfile.DIRTYPE, "is a directory"),
        (tarfile.LNKTYPE, "is a hard link"),
        (tarfile.FIFOTYPE, "is a FIFO"),
    ]:
        path = tmp_path / "t.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo("k.png")
            info.type, info.linkname = kind, "a.png"
            tf.addfile(info)
        with pytest.raises(ShardError, match=f"t.tar: member 'k.png/?' {what}"):  # tarfile adds / to directories
            list(_TarMembers(str(path), hashed=False))


# ----------------------------------------------------------------------------- damaged shards (issue 16)


@pytest.mark.parametrize(
    "edit, problem",
    [
        (extra_member("k0.png", kind=tarfile.SYMTYPE, target="/etc/passwd"), "member 'k0.png' is a symlink"),
        (extra_member("/abs.json"), "member '/abs.json' has an absolute name"),
        (extra_member("../up.json"), "member '../up.json' has a '..' in its name"),
        (extra_member("dir/key.json"), "member 'dir/key.json' has a '/' in its key"),
        (extra_member("odd.name.json"), "member 'odd.name.json' is not KEY.jpg, KEY.png or KEY.json"),
    ],
)
def test_readers_refuse_odd_members(split, edit, problem):
    rewrite_shard(split, "shard-000001.tar", edit)  # checksum recomputed: only the member check can tell
    for read in (
        lambda: list(ShardReader(split).samples(decode_images=False)),
        lambda: list(ShardReader(split, check_checksums=False).raw()),
    ):
        with pytest.raises(ShardError, match="shard-000001.tar: " + re.escape(problem)):
            read()


def test_sample_without_json_is_refused(split):
    from test_verify import drop_first_json

    rewrite_shard(split, "shard-000000.tar", drop_first_json)
    with pytest.raises(ShardError, match=r"shard-000000.tar: sample \S+ has no json member"):
        list(ShardReader(split).samples(decode_images=False))


def test_damaged_shards_raise_one_shard_error(split):
    shard = split / "shard-000000.tar"
    data = shard.read_bytes()
    with tarfile.open(shard) as tf:
        boundary = tf.getmembers()[1].offset  # the second member's header: the first one is whole
    cases = [
        (data[:1536], "truncated: unexpected end of data"),
        (data[:100] + b"x" + data[101:], "bad header checksum"),
        (data[:boundary], "truncated: ends without the end-of-archive marker"),
    ]
    for damaged, problem in cases:
        shard.write_bytes(damaged)
        for check in (True, False):
            with pytest.raises(ShardError, match=f"shard-000000.tar: {problem}"):
                list(ShardReader(split, check_checksums=check).raw())
    shard.unlink()
    with pytest.raises(ShardError, match="shard-000000.tar: missing"):
        list(ShardReader(split).raw())
    assert issubclass(ChecksumError, ShardError) and issubclass(ShardError, ValueError)


def test_a_split_with_no_shards_reads_as_empty(tmp_path):
    """A committed split with no samples (every image quarantined, every target filtered out)
    is a split, not an error: it reads as nothing."""
    with ShardWriter(tmp_path / "val"):
        pass
    reader = ShardReader(tmp_path / "val")
    assert reader.info["shards"] == [] and len(reader) == 0
    assert list(reader.samples()) == [] and list(reader.raw()) == []
