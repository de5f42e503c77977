"""Finding a split from a split or dataset path."""

import pytest

from shards.layout import resolve_split_dir


def test_split_or_dataset_dir(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "ds" / split).mkdir(parents=True)
        (tmp_path / "ds" / split / "dataset.json").write_text("{}")
    assert resolve_split_dir(tmp_path / "ds") == tmp_path / "ds" / "train"  # a dataset dir: its train split
    assert resolve_split_dir(str(tmp_path / "ds"), "val") == tmp_path / "ds" / "val"
    assert resolve_split_dir(tmp_path / "ds" / "val", "test") == tmp_path / "ds" / "val"  # a split dir as is
    with pytest.raises(FileNotFoundError, match="not a shard split .* nor a dataset with a 'test' split"):
        resolve_split_dir(tmp_path / "ds", "test")
