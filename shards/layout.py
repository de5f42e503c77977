"""Where things live in a dataset: the file names of a split, and finding a split from a path.

    DATA_ROOT/NAME/SPLIT/shard-000000.tar ...   the shards dataset.json lists
    DATA_ROOT/NAME/SPLIT/manifest.parquet        one row per target
    DATA_ROOT/NAME/SPLIT/dataset.json            schema version, counts, per-shard checksums
    DATA_ROOT/NAME/SPLIT/quarantine.jsonl        every rejected input with its reason
    DATA_ROOT/NAME/SPLIT/_parts/                 per-shard manifest parts (resume state)
"""

from __future__ import annotations

import os
from pathlib import Path

from shards.errors import MissingInputError

DATASET_JSON = "dataset.json"
MANIFEST = "manifest.parquet"
QUARANTINE = "quarantine.jsonl"
PARTS_DIR = "_parts"
SHARD_PATTERN = "shard-{:06d}.tar"


def resolve_split_dir(path: str | os.PathLike, split: str = "train") -> Path:
    """A split directory from a split directory or a dataset directory.

    Args:
        path: a split dir (it holds dataset.json) or a dataset dir (DATA_ROOT/NAME).
        split: the split used when ``path`` is a dataset dir.

    Raises:
        MissingInputError: neither PATH/dataset.json nor PATH/<split>/dataset.json exists.
    """
    p = Path(path)
    if (p / DATASET_JSON).is_file():
        return p
    if (p / split / DATASET_JSON).is_file():
        return p / split
    raise MissingInputError(f"{p}: not a shard split (no {DATASET_JSON}) nor a dataset with a '{split}' split")
