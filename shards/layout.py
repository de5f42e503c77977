"""Where things live in a dataset: the file names of a split, and finding a split from a path.

    DATA_ROOT/NAME/SPLIT/shard-000000.tar ...   the shards dataset.json lists
    DATA_ROOT/NAME/SPLIT/manifest.parquet        one row per target
    DATA_ROOT/NAME/SPLIT/dataset.json            schema version, counts, per-shard checksums
    DATA_ROOT/NAME/SPLIT/quarantine.jsonl        every rejected input with its reason
    DATA_ROOT/NAME/SPLIT/_parts/                 per-shard manifest parts (resume state)

DATA_ROOT may be a local path or any fsspec URL (shards.storage). A writer with an
identity W names its shards ``shard-W-NNNNNN.tar`` (several writers on one split never
collide) and keeps its quarantine records in ``_parts/quarantine-W.jsonl``; the default
writer names them ``shard-NNNNNN.tar``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from common.errors import MissingInputError
from shards import storage

DATASET_JSON = "dataset.json"
MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.jsonl"
PARTS_DIR = "_parts"
SOURCE_INDEX = "source_index.parquet"  # annotated splits before issue 25: the whole source index in one file
SOURCE_INDEX_DIR = "source_index"  # annotated splits: (path, size, version) -> sha256, one file per listing partition
SHARD_PATTERN = "shard-{:06d}.tar"  # the default writer's names
_WRITER_ID = re.compile(r"[A-Za-z0-9_]+")
_SHARD_NAME = re.compile(r"shard-(?:([A-Za-z0-9_]+)-)?(\d{6,})\.tar")


def check_writer_id(writer: str) -> str:
    """A writer identity: letters, digits and ``_`` (it becomes part of file names)."""
    if not _WRITER_ID.fullmatch(writer or ""):
        raise ValueError(f"writer identity {writer!r}: use letters, digits and _ only")
    return writer


def shard_name(index: int, writer: str | None = None) -> str:
    """``shard-NNNNNN.tar``, or ``shard-W-NNNNNN.tar`` for writer W."""
    return SHARD_PATTERN.format(index) if writer is None else f"shard-{check_writer_id(writer)}-{index:06d}.tar"


def parse_shard_name(name: str) -> tuple[str | None, int] | None:
    """(writer or None, index) of a shard file name, or None if it is not one."""
    m = _SHARD_NAME.fullmatch(name)
    return None if m is None else (m.group(1), int(m.group(2)))


def shard_order(name: str) -> tuple[str, int]:
    """Sort key of shard names: by writer (the default writer first), then index."""
    writer, index = parse_shard_name(name) or ("~" + name, 0)
    return (writer or "", index)


def part_name(shard: str) -> str:
    """The manifest part of a shard, inside PARTS_DIR."""
    return shard + ".parquet"


def quarantine_part(writer: str) -> str:
    """The quarantine file of writer W, inside PARTS_DIR (merged into quarantine.jsonl by the commit)."""
    return f"quarantine-{check_writer_id(writer)}.jsonl"


def resolve_split_dir(path: str | os.PathLike, split: str = "train") -> Path | str:
    """A split directory from a split directory or a dataset directory.

    Args:
        path: a split dir (it holds dataset.json) or a dataset dir (DATA_ROOT/NAME); a local
            path or an fsspec URL.
        split: the split used when ``path`` is a dataset dir.

    Returns:
        Path | str: a Path for a local directory, the URL string otherwise.

    Raises:
        MissingInputError: neither PATH/dataset.json nor PATH/<split>/dataset.json exists.
    """
    for cand in (storage.normalize(path), storage.join(path, split)):
        if storage.exists(storage.join(cand, DATASET_JSON)):
            return cand if storage.is_url(cand) else Path(cand)
    raise MissingInputError(f"{path}: not a shard split (no {DATASET_JSON}) nor a dataset with a '{split}' split")


def find_splits(path: str | os.PathLike) -> list[Path | str]:
    """A split dir itself, or every split dir (with dataset.json) below a dataset dir."""
    if storage.exists(storage.join(path, DATASET_JSON)):
        found = [storage.normalize(path)]
    else:
        found = [storage.parent(f) for f in storage.find(path, DATASET_JSON)]
    return [s if storage.is_url(s) else Path(s) for s in sorted(found, key=os.fspath)]
