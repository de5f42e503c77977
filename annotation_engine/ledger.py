"""The run's ledger: the bookkeeping every stage of an annotation run asks before it acts, in
as many Ray actors (partitions) as the input needs, none holding state for the whole input.

One ``Ledger`` is one partition. It owns two slices of the run's state (never image bytes):

- **by content** (the sha256's first 32 bits, in ``slots`` contiguous ranges: ``content_slot``):
  - **done**: images this engine version already annotated (or quarantined for good) in the
    split, read from the split's manifest and quarantine when the first claim comes by, keeping
    only this partition's range; a re-run skips them;
  - **claims**: which path first claimed each content in this run. A second path with the same
    bytes is a duplicate and is dropped before the engine sees it; the same path claiming again
    (a retried task) is let through, so a retry never loses an image;
  - **crashes**: an engine actor calls ``begin(sha)`` before annotating an image and
    ``end(sha)`` after. An image still open at the next ``begin`` was in flight when its actor
    died; the next attempt runs it in a child process (``annotation_engine.actor``), where a
    death is the image's own doing and quarantines it, while a kill from outside the actor
    never blames the image it happened to be working on;
- **by listing partition** (``path_slot``): the source index (path, size, version -> sha256,
  ``annotation_engine.source_index``), one file per listing partition, loaded when its first
  image comes by, so that unchanged images are not read again, and extended with what this run
  hashed;
- **progress counters** (listed, read, skipped, duplicates, annotated, quarantined, written)
  that the driver sums over the partitions for its progress bar and the flow's artifact.

Content keys are kept as 16 bytes and claimants as the hash of their path (about 120 bytes an
image). ``annotation_engine.ledger_group`` starts the partitions and routes each call.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from typing import Any

from annotation_engine import done_set
from annotation_engine.source_index import DEFAULT_PARTITION, IndexPartitions

GO, DONE, DUPLICATE, SUSPECT = "go", "done", "duplicate", "suspect"
INDEX_ROWS = 200_000  # source index entries a partition keeps loaded (older listing partitions are dropped)


def content_slot(key: str, slots: int) -> int:
    """The partition that owns a content (a sha256): contiguous ranges of its first 32 bits. A key
    that is not a sha256 (a path, for a row that never had content) goes by its crc32."""
    try:
        return (int(key[:8], 16) * slots) >> 32 if len(key) >= 8 else zlib.crc32(key.encode()) % slots
    except ValueError:
        return zlib.crc32(key.encode()) % slots


def path_slot(part: str, slots: int) -> int:
    """The partition that owns a listing partition's source index."""
    return zlib.crc32((part or DEFAULT_PARTITION).encode()) % slots


def _key(sha: str) -> bytes:
    """A content's key in memory: 16 bytes of its sha256 (the text itself if it is not one)."""
    try:
        return bytes.fromhex(sha[:32]) if len(sha) >= 32 else sha.encode()
    except ValueError:
        return sha.encode()


class Ledger:
    """Bookkeeping of one partition of an annotation run (a Ray actor; plain class for tests).

    Args:
        split_dir (str): the split being written (local path or URL).
        done (list[str] | None): sha256 of images already done for this engine version; None:
            read this partition's share from the split when the first claim comes by.
        version (str | None): the engine version (what "done" means when it is read).
        slot (tuple[int, int]): (this partition, number of partitions).
        index_rows (int): source index entries kept loaded at most.
    """

    def __init__(
        self,
        split_dir: str,
        done: list[str] | None = None,
        version: str | None = None,
        slot: tuple[int, int] = (0, 1),
        index_rows: int = INDEX_ROWS,
    ):
        self.split_dir, self.version, self.slot = split_dir, version, tuple(slot)
        self.done: set[bytes] | None = None if done is None else {_key(s) for s in done}
        self.claims: dict[bytes, int] = {}  # content -> hash of the path that claimed it in this run
        self.open: set[bytes] = set()  # begun, not ended
        self.crashes: Counter[bytes] = Counter()
        self.index = IndexPartitions(split_dir, index_rows)
        self.counts: Counter[str] = Counter()
        self.started = time.time()
        self.times: dict[str, float] = {}  # first_begin, first_end, last_end (epoch seconds)

    def _done(self) -> set[bytes]:
        if self.done is None:  # this partition's share, read when its first image comes by
            self.done = {_key(s) for s in done_set.done_in_slot(self.split_dir, self.version, *self.slot)}
        return self.done

    # ---- listing and hashing -------------------------------------------------------

    def lookup(self, rows: list[tuple]) -> list[str | None]:
        """(path, size, version[, listing partition]) of listed files -> the sha256 the index
        knows for that exact file, or None (new or changed: it must be read)."""
        out = []
        for path, size, version, *part in rows:
            known = self.index.lookup(part[0] if part else DEFAULT_PARTITION, path) if version else None
            out.append(known[2] if known is not None and known[0] == size and known[1] == version else None)
        self.counts["listed"] += len(rows)
        return out

    def remember(self, rows: list[tuple[str, str, int, str, str]]) -> None:
        """(listing partition, path, size, version, sha256) of files this run read: added to the
        source index (whatever the verdict: a duplicate or done image need not be read again)."""
        for part, path, size, version, sha in rows:
            self.counts["read"] += 1
            if version:
                self.index.add(part, path, (size, version, sha))

    def claim(self, rows: list[tuple]) -> list[str]:
        """(path, sha256, size, version, was read[, listing partition]) -> GO, DONE or DUPLICATE.

        Files that were read are added to the source index here (a ledger on its own); a group of
        partitions sends them to their index's owner with ``remember`` instead."""
        done, out = self._done(), []
        for path, sha, size, version, was_read, *part in rows:
            if was_read:
                self.remember([(part[0] if part else DEFAULT_PARTITION, path, size, version, sha)])
            k, who = _key(sha), hash(path)
            if k in done:
                verdict = DONE
            elif self.claims.setdefault(k, who) != who:
                verdict = DUPLICATE
            else:
                verdict = GO
            out.append(verdict)
            self.counts[{GO: "pending", DONE: "skipped", DUPLICATE: "duplicates"}[verdict]] += 1
        return out

    # ---- the engine ----------------------------------------------------------------

    def begin(self, sha: str) -> tuple[str, int]:
        """An engine actor starts on an image: (GO or SUSPECT, deaths so far while it was open)."""
        self.times.setdefault("first_begin", time.time())
        k = _key(sha)
        if k in self.open:  # the last attempt never ended: its actor died
            self.crashes[k] += 1
            self.counts["actor_deaths"] += 1
        self.open.add(k)
        return (SUSPECT if self.crashes[k] else GO), self.crashes[k]

    def end(self, sha: str, outcome: str) -> None:
        """The image is annotated ("annotated") or quarantined (its quarantine kind).

        Rows that never reached the engine (a file that could not be listed or read: no
        ``begin``) are counted but leave the engine's times alone, which span begun images only."""
        self.counts["annotated" if outcome == "annotated" else "quarantined"] += 1
        k = _key(sha)
        if k not in self.open:
            return
        self.open.discard(k)
        self.times["last_end"] = time.time()
        self.times.setdefault("first_end", self.times["last_end"])

    def begin_many(self, shas: list[str]) -> list[tuple[str, int]]:
        """``begin`` for each image of an engine batch (one call, not one per image)."""
        return [self.begin(sha) for sha in shas]

    def end_many(self, rows: list[tuple[str, str]]) -> None:
        """``end`` for each (sha256 or path, outcome) of an engine batch."""
        for sha, outcome in rows:
            self.end(sha, outcome)

    def unreadable(self, n: int) -> None:
        self.counts["quarantined"] += n

    def written(self, samples: int, quarantined: int, shards: int) -> None:
        """A writer finished: what it wrote."""
        self.counts["written"] += samples
        self.counts["quarantine_records"] += quarantined
        self.counts["shards"] += shards

    # ---- reporting -----------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """Counters so far, seconds since the ledger started, and the engine's first and last
        image times (epoch seconds: time to first image, the annotating window)."""
        return {**self.counts, "seconds": round(time.time() - self.started, 1), **self.times}

    def save_index(self) -> int:
        """Writes the source index partitions this run changed; returns the entries loaded."""
        return self.index.save()

    def stats(self) -> dict[str, Any]:
        """What this partition holds (for the scale benchmark): entries and peak memory (MB)."""
        import resource

        return {
            "claims": len(self.claims),
            "done": len(self.done or ()),
            "index_rows": self.index.rows,
            "index_files_written": self.index.saved_files,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        }
