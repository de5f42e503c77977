"""Local copies of remote files for readers that need a real file (memory-mapped checkpoints).

At most CACHE_BYTES are kept (least recently used go first; the file just fetched stays),
under cache_dir(), shared by the processes of a machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from shards.storage import files
from shards.storage.location import PathOrLocation, local_path, name

CACHE_BYTES = int(os.environ.get("UNILSEG_CACHE_BYTES", 8 << 30))


def cache_dir() -> Path:
    """Where local_copy keeps its files (UNILSEG_CACHE_DIR, else under the system temp dir)."""
    d = Path(os.environ.get("UNILSEG_CACHE_DIR") or Path(tempfile.gettempdir()) / "unilseg-cache")
    d.mkdir(parents=True, exist_ok=True)
    return d


def local_copy(loc: PathOrLocation) -> Path:
    """A local file holding the bytes of ``loc``: the path itself when local; else a copy in
    a bounded cache (cache_dir, CACHE_BYTES), fetched once per version of the file (its
    size and ETag or modification time) and shared by the processes of a machine.

    Raises:
        FileNotFoundError: nothing is at ``loc``.
    """
    if (p := local_path(loc)) is not None:
        if not os.path.isfile(p):
            raise FileNotFoundError(p)
        return Path(p)
    version = files.file_version(loc)
    key = hashlib.sha1(json.dumps([os.fspath(loc), version]).encode("utf-8")).hexdigest()[:24]
    d = cache_dir()
    cached = d / f"{key}-{name(loc)}"
    if cached.is_file():
        os.utime(cached)  # most recently used
        return cached
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".fetch-")  # a unique name: processes may fetch at once
    try:
        with os.fdopen(fd, "wb") as out, files.open_read(loc) as f:
            shutil.copyfileobj(f, out, files.READ_BLOCK)
        os.replace(tmp, cached)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _trim_cache(d, keep=cached)
    return cached


def _trim_cache(d: Path, keep: Path) -> None:
    entries = []
    for f in d.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if f.is_file() and not f.name.startswith(".fetch-") and f != keep:
                st = f.stat()
                entries.append((st.st_mtime, st.st_size, f))
    total = sum(s for _, s, _ in entries) + keep.stat().st_size
    for _, s, f in sorted(entries):  # oldest first
        if total <= CACHE_BYTES:
            break
        with contextlib.suppress(FileNotFoundError):  # a reader that has it open keeps its bytes
            f.unlink()
        total -= s
