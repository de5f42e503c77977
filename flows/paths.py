"""Where relative locations in pipeline configs point: the project root (the checkout).

A configured `data_root`, `runs_root`, image folder or YAML path that is relative is taken
from the project root, whatever the process's working directory (a served deployment runs
flows from its own directory). URLs (`s3://...`) and absolute paths are kept as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from shards import storage
from shards.storage import Location

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def resolve(location: str | Path | Location) -> str | Location:
    """A location as given when absolute or a URL, else PROJECT_ROOT / location (a Location
    keeps its options)."""
    s = os.fspath(location)
    if "://" in s or Path(s).is_absolute():
        return storage.normalize(location)
    return storage.like(location, str(PROJECT_ROOT / s))
