"""Counts of a split or dataset, from dataset.json and the manifest."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pyarrow.compute as pc

from common.errors import ShardError
from shards import storage
from shards.layout import find_splits
from shards.manifest import read_dataset_json, read_manifest


def split_stats(split_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts of one split: images, targets, by task, by granularity, by source, no-target count.

    Raises:
        ShardError: the split is damaged (a shard dataset.json lists is missing, or the
            manifest is), rather than counts that would silently be too small.
    """
    info = read_dataset_json(split_dir)
    missing = [s["name"] for s in info.get("shards", []) if not storage.exists(storage.join(split_dir, s["name"]))]
    if missing:
        raise ShardError(
            split_dir,
            f"damaged: {len(missing)} of the shards dataset.json lists are missing "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
            "run `unilseg shards verify`",
        )
    m = read_manifest(split_dir, columns=["key", "task", "granularity", "source", "has_mask", "area"])
    counts = info.get("counts", {})
    return {
        "status": info.get("status", "missing"),
        "shards": counts.get("shards", 0),
        "images": len(set(m.column("key").to_pylist())),
        "targets": m.num_rows,
        "no_target": int(m.num_rows - pc.sum(m.column("has_mask")).as_py()) if m.num_rows else 0,
        "quarantined": counts.get("quarantined", 0),
        "by_task": dict(sorted(Counter(m.column("task").to_pylist()).items())),
        "by_granularity": dict(sorted(Counter(m.column("granularity").to_pylist()).items())),
        "by_source": dict(sorted(Counter(m.column("source").to_pylist()).items())),
    }


def dataset_stats(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Stats of every split below a path or URL (or of the split itself), keyed by split dir."""
    splits = find_splits(path)
    if not splits:
        raise FileNotFoundError(f"no split (dataset.json) under {path}")
    return {str(s): split_stats(s) for s in splits}


def format_stats(stats: dict[str, dict[str, Any]]) -> str:
    """Human-readable text of dataset_stats."""
    lines = []
    for split, s in stats.items():
        lines.append(f"{split}  [{s['status']}]")
        lines.append(
            f"  shards {s['shards']}  images {s['images']}  targets {s['targets']}  "
            f"no-target {s['no_target']}  quarantined {s['quarantined']}"
        )
        for title in ("by_task", "by_granularity", "by_source"):
            items = "  ".join(f"{k}={v}" for k, v in s[title].items())
            lines.append(f"  {title.replace('_', ' ')}: {items}")
    return "\n".join(lines)
