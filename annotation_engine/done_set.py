"""What a split already holds for an engine version, read one content range at a time.

An image is done for an engine version when its (sha256, version) pair is in the split's
manifest, or in its quarantine as "no targets", "bad input" or "crashed the engine" for that
version. A ledger partition reads only its own range of sha256 (``ledger.content_slot``): the
manifest is streamed a row group at a time and filtered in Arrow, so no process ever holds the
done set of the whole split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from annotation_engine.image_task import BAD_INPUT, CRASHED, NO_TARGETS
from shards import storage
from shards.layout import MANIFEST
from shards.manifest import read_dataset_json, read_manifest, read_quarantine

# Quarantine kinds that mark an image as processed for an engine version (not retried).
DONE_KINDS = frozenset({NO_TARGETS, BAD_INPUT, CRASHED})
_BATCH_ROWS = 65_536


def slot_bounds(slot: int, slots: int) -> tuple[str, str | None]:
    """The lowest sha256 prefix of a content partition and the first of the next (None: the last)."""
    lo = -(-slot * (1 << 32) // slots)
    hi = -(-(slot + 1) * (1 << 32) // slots)
    return f"{lo:08x}", (f"{hi:08x}" if hi < (1 << 32) else None)


def _in_slot(sha: Any, lo: str, hi: str | None) -> Any:
    mask = pc.greater_equal(sha, lo)
    return mask if hi is None else pc.and_(mask, pc.less(sha, hi))


def _manifest_batches(split_dir: Any) -> Iterator[Any]:
    """(image_sha256, engine_version) record batches of the split's manifest."""
    info = read_dataset_json(split_dir)
    if not info:
        return
    loc = storage.join(split_dir, MANIFEST)
    if info.get("status") == "complete" or storage.exists(loc):
        src = storage.local_path(loc) or storage.open_read(loc)
        try:
            # without pre-buffering or threads: Arrow otherwise reads ahead and kept ~660 MB of a
            # 10 million row manifest in its pool (BENCHMARKS.md, "Bookkeeping at scale")
            yield from pq.ParquetFile(src, pre_buffer=False).iter_batches(
                batch_size=_BATCH_ROWS, columns=["image_sha256", "engine_version"], use_threads=False
            )
        finally:
            if not isinstance(src, str):
                src.close()
    else:  # a split no commit has merged yet: its listed parts
        yield from read_manifest(split_dir, columns=["image_sha256", "engine_version"]).to_batches()


def done_in_slot(split_dir: Any, version: str | None, slot: int = 0, slots: int = 1) -> Iterator[str]:
    """sha256 of the images done for ``version`` whose content partition is ``slot`` of ``slots``
    (each may come more than once: one per target)."""
    if version is None:
        return
    lo, hi = slot_bounds(slot, slots)
    for batch in _manifest_batches(split_dir):
        keep = pc.and_(pc.equal(batch.column(1), version), _in_slot(batch.column(0), lo, hi))
        yield from batch.column(0).filter(keep).to_pylist()
    for r in read_quarantine(split_dir):
        sha = r.get("sha256")
        if r.get("kind") in DONE_KINDS and sha and r.get("engine_version") == version and lo <= sha[:8]:
            if hi is None or sha[:8] < hi:
                yield sha


def done_shas(split_dir: Any, version: str) -> list[str]:
    """sha256 of every image done with this engine version (the whole split: for tests and tools)."""
    return sorted(set(done_in_slot(split_dir, version)))
