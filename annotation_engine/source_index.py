"""The source index: (path, size, version) -> sha256 of the inputs, one file per listing partition.

``SPLIT/source_index/<partition>.parquet`` holds the entries of the files one listing task
lists (``sources.partitions``: a subfolder or sub-prefix, a glob, a chunk of named files),
named by ``partition_id``. A ledger partition loads a file when the first of its images comes
by and rewrites it only when that run hashed something new in it, so a re-run over an unchanged
bucket reads the index and writes nothing, and no process ever holds the whole index.

The single file of earlier runs (``SPLIT/source_index.parquet``) is still read: a partition
with no file of its own looks its paths up there, and saves what it found under its own name
(the migration); the driver removes the old file once a run has finished complete.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shards import storage
from shards.layout import SOURCE_INDEX, SOURCE_INDEX_DIR

Entry = tuple[int, str, str]  # (size, version, sha256)
INDEX_SCHEMA = pa.schema(
    [("path", pa.string()), ("size", pa.int64()), ("version", pa.string()), ("sha256", pa.string())]
)
DEFAULT_PARTITION = "all"  # rows that name no listing partition (a ledger used on its own)


def _plain(arg: Any) -> Any:
    """Locations as their URLs (a partition's name never depends on how it is reached)."""
    if isinstance(arg, (list, tuple)):
        return type(arg)(_plain(a) for a in arg)
    return os.fspath(arg) if isinstance(arg, os.PathLike) else arg


def partition_id(kind: str, arg: Any) -> str:
    """A listing partition's stable name: the same folder, pattern or files give the same name."""
    return hashlib.sha1(f"{kind}\0{_plain(arg)!r}".encode()).hexdigest()[:16]


def _part_file(split_dir: Any, part: str) -> Any:
    return storage.join(split_dir, SOURCE_INDEX_DIR, f"{part or DEFAULT_PARTITION}.parquet")


def _read_table(loc: Any) -> dict[str, Entry]:
    try:
        data = storage.read_bytes(loc)
    except FileNotFoundError:
        return {}
    t = pq.read_table(io.BytesIO(data), schema=INDEX_SCHEMA)
    cols = [t.column(n).to_pylist() for n in ("path", "size", "version", "sha256")]
    return {p: (s, v, h) for p, s, v, h in zip(*cols)}


def _table_bytes(index: dict[str, Entry]) -> bytes:
    paths = sorted(index)
    table = pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array([index[p][0] for p in paths], pa.int64()),
            pa.array([index[p][1] for p in paths], pa.string()),
            pa.array([index[p][2] for p in paths], pa.string()),
        ],
        schema=INDEX_SCHEMA,
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def read_part(split_dir: Any, part: str) -> dict[str, Entry]:
    """path -> (size, version, sha256) of one listing partition ({} if it has no file yet)."""
    return _read_table(_part_file(split_dir, part))


def write_part(split_dir: Any, part: str, index: dict[str, Entry]) -> None:
    """Writes one partition's file whole (it appears complete or not at all)."""
    storage.makedirs(storage.join(split_dir, SOURCE_INDEX_DIR))
    storage.write_bytes(_part_file(split_dir, part), _table_bytes(index))


def read_legacy(split_dir: Any) -> dict[str, Entry]:
    """The single-file index of earlier runs ({} if there is none)."""
    return _read_table(storage.join(split_dir, SOURCE_INDEX))


def remove_legacy(split_dir: Any) -> None:
    """Removes the single-file index once every partition has its own file."""
    loc = storage.join(split_dir, SOURCE_INDEX)
    if storage.exists(loc):
        storage.remove(loc)


def read_index(split_dir: Any) -> dict[str, Entry]:
    """The whole index (every partition, and an old single file): for tests and tools only,
    it holds every entry in memory."""
    index = read_legacy(split_dir)
    for name in storage.listdir(storage.join(split_dir, SOURCE_INDEX_DIR)):
        if name.endswith(".parquet"):
            index.update(_read_table(storage.join(split_dir, SOURCE_INDEX_DIR, name)))
    return index


def write_index(split_dir: Any, index: dict[str, Entry]) -> None:
    """Writes entries that name no listing partition (the default partition's file)."""
    write_part(split_dir, DEFAULT_PARTITION, index)


class IndexPartitions:
    """The listing partitions of the source index one ledger owns: each loaded when first asked
    about, saved when it changed, and dropped (saved first) once more than ``max_rows`` entries
    are loaded, oldest first, so that memory follows the partitions in flight, not the input.

    Args:
        split_dir: the split (local path or URL).
        max_rows (int): entries kept loaded before the least recently used partition is dropped.
    """

    def __init__(self, split_dir: Any, max_rows: int):
        self.split_dir, self.max_rows = split_dir, max_rows
        self.loaded: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self.dirty: set[str] = set()
        self.rows = 0
        self._legacy: dict[str, Entry] | None = None
        self._fresh: set[str] = set()  # partitions with no file of their own yet (looked up in the old file)
        self.saved_files = 0  # partition files written (a re-run over unchanged inputs writes none)

    def _legacy_index(self) -> dict[str, Entry]:
        if self._legacy is None:  # read once per ledger, only when a partition has no file yet
            self._legacy = read_legacy(self.split_dir)
        return self._legacy

    def get(self, part: str) -> dict[str, Entry]:
        """The entries of one partition (loading it, and perhaps dropping older ones)."""
        if part in self.loaded:
            self.loaded.move_to_end(part)
            return self.loaded[part]
        entries = read_part(self.split_dir, part)
        if not entries:
            self._fresh.add(part)
        self.loaded[part] = entries
        self.rows += len(entries)
        self._shrink()
        return entries

    def lookup(self, part: str, path: str) -> Entry | None:
        entries = self.get(part)
        known = entries.get(path)
        if known is None and part in self._fresh and self._legacy_index():
            known = self._legacy_index().get(path)
            if known is not None:  # migrated: saved under the partition's own name
                self.add(part, path, known)
        return known

    def add(self, part: str, path: str, entry: Entry) -> None:
        entries = self.get(part)
        if path not in entries:
            self.rows += 1
        if entries.get(path) != entry:
            entries[path] = entry
            self.dirty.add(part)
        self._shrink()

    def _shrink(self) -> None:
        while self.rows > self.max_rows and len(self.loaded) > 1:
            part, entries = next(iter(self.loaded.items()))
            self._save_one(part)
            del self.loaded[part]
            self.rows -= len(entries)

    def _save_one(self, part: str) -> None:
        if part in self.dirty:
            write_part(self.split_dir, part, self.loaded[part])
            self.dirty.discard(part)
            self.saved_files += 1

    def save(self) -> int:
        """Writes every changed partition; returns the entries loaded."""
        for part in list(self.dirty):
            self._save_one(part)
        return self.rows
