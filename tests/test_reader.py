import numpy as np
import pytest

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
