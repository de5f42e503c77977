"""shards.storage.local_cache: local copies of remote files, fetched once per version, bounded."""

import pytest

from shards import storage
from shards.storage import local_cache


def test_local_copy_fetches_once_per_version_and_stays_bounded(tmp_path, request, monkeypatch):
    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    root = f"memory://unilseg-{request.node.name}"
    local = tmp_path / "here.pt"
    local.write_bytes(b"x")
    assert storage.local_copy(local) == local  # a local file is its own copy
    with pytest.raises(FileNotFoundError):
        storage.local_copy(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError):
        storage.local_copy(storage.join(root, "none.pt"))
    a = storage.join(root, "a.pt")
    storage.write_bytes(a, b"a" * 100)
    first = storage.local_copy(a)
    assert first.read_bytes() == b"a" * 100 and first.parent == tmp_path / "cache"
    assert storage.local_copy(a) == first  # same version: no second fetch
    storage.write_bytes(a, b"b" * 100)
    second = storage.local_copy(a)
    assert second != first and second.read_bytes() == b"b" * 100  # a new version is fetched
    monkeypatch.setattr(local_cache, "CACHE_BYTES", 250)
    for name in ("c.pt", "d.pt"):
        storage.write_bytes(storage.join(root, name), b"c" * 100)
        storage.local_copy(storage.join(root, name))
    files = [f for f in (tmp_path / "cache").iterdir()]
    assert sum(f.stat().st_size for f in files) <= 250 and len(files) == 2  # least recently used went first
    assert not first.exists()
