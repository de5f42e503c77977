"""The run's ledger: one small Ray actor that every stage of an annotation run asks before it acts.

It holds what no single task can know, as a few sets and counters (never image bytes):

- **done**: sha256 of the images this engine version already annotated (or quarantined
  for good) in the split, loaded from the dataset when the run starts, so that a re-run
  skips them;
- **claims**: which path first claimed each content (sha256) in this run. A second path with
  the same bytes is a duplicate and is dropped before the engine sees it; the same path
  claiming again (a retried task) is let through, so a retry never loses an image;
- **crashes**: an engine actor calls ``begin(sha)`` before annotating an image and
  ``end(sha)`` after. An image still open at the next ``begin`` was in flight when its actor
  died; the next attempt runs it in a child process (``annotation_engine.actor``), where a
  death is the image's own doing and quarantines it, while a kill from outside the actor
  never blames the image it happened to be working on;
- **the source index** (path, size, version -> sha256, ``annotation_engine.sources``): looked up
  so that unchanged images are not read again, and extended with what this run hashed;
- **progress counters** (listed, skipped, duplicates, annotated, quarantined, written) that the
  driver polls for its progress bar and the flow's Prefect progress artifact.

The ledger runs on the driver's node (a node failure elsewhere does not lose it) with no CPU
reserved; each call is a dictionary operation, batched per block by the callers.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from annotation_engine import sources

GO, DONE, DUPLICATE, SUSPECT = "go", "done", "duplicate", "suspect"


class Ledger:
    """Run-wide bookkeeping of one annotation run (a Ray actor; plain class for tests).

    Args:
        split_dir (str): the split being written (local path or URL).
        done (list[str]): sha256 of images already done for this engine version.
    """

    def __init__(self, split_dir: str, done: list[str]):
        self.split_dir = split_dir
        self.done = set(done)
        self.claims: dict[str, str] = {}  # sha256 -> the path that claimed it in this run
        self.open: set[str] = set()  # begun, not ended
        self.crashes: Counter[str] = Counter()
        self.index = sources.read_index(split_dir)  # path -> (size, version, sha256)
        self.new_index: dict[str, tuple[int, str, str]] = {}
        self.counts: Counter[str] = Counter()
        self.started = time.time()
        self.times: dict[str, float] = {}  # first_begin, first_end, last_end (epoch seconds)

    # ---- listing and hashing -------------------------------------------------------

    def lookup(self, rows: list[tuple[str, int, str]]) -> list[str | None]:
        """(path, size, version) of listed files -> the sha256 the index knows for that exact
        file, or None (new or changed: it must be read)."""
        out = []
        for path, size, version in rows:
            known = self.index.get(path)
            out.append(known[2] if known is not None and known[0] == size and known[1] == version and version else None)
        self.counts["listed"] += len(rows)
        return out

    def claim(self, rows: list[tuple[str, str, int, str, bool]]) -> list[str]:
        """(path, sha256, size, version, was read) -> GO, DONE or DUPLICATE for each.

        Files that were read are added to the source index (whatever the verdict: a
        duplicate or done image need not be read again either)."""
        out = []
        for path, sha, size, version, was_read in rows:
            self.counts["read"] += was_read
            if was_read and version:
                self.new_index[path] = (size, version, sha)
            if sha in self.done:
                verdict = DONE
            elif self.claims.setdefault(sha, path) != path:
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
        if sha in self.open:  # the last attempt never ended: its actor died
            self.crashes[sha] += 1
            self.counts["actor_deaths"] += 1
        self.open.add(sha)
        return (SUSPECT if self.crashes[sha] else GO), self.crashes[sha]

    def end(self, sha: str, outcome: str) -> None:
        """The image is annotated ("annotated") or quarantined (its quarantine kind).

        Rows that never reached the engine (a file that could not be listed or read: no
        ``begin``) are counted but leave the engine's times alone, which span begun images only."""
        self.counts["annotated" if outcome == "annotated" else "quarantined"] += 1
        if sha not in self.open:
            return
        self.open.discard(sha)
        self.times["last_end"] = time.time()
        self.times.setdefault("first_end", self.times["last_end"])

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
        """Writes the source index with this run's entries added; returns its size."""
        if self.new_index:
            self.index.update(self.new_index)
            sources.write_index(self.split_dir, self.index)
            self.new_index = {}
        return len(self.index)


def start_ledger(split_dir: str, done: list[str], run_id: str) -> Any:
    """The ledger as a Ray actor on this (the driver's) node, named after the run."""
    node = ray.get_runtime_context().get_node_id()
    remote = ray.remote(Ledger).options(
        name=f"unilseg-ledger-{run_id}",
        num_cpus=0,
        max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
    )
    return remote.remote(split_dir, done)
