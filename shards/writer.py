"""Shard writer: samples -> finished WebDataset shards, manifest, dataset.json, quarantine.

The split may be a local path or an fsspec URL (shards.storage); the commit protocol is in
shards.commit. Crash safety: a shard is written to a staging file (``shard-NNNNNN.tar.tmp``
in the split when local, in a local temp dir otherwise) and published under its final name
(a rename, or one upload) only once complete, after its manifest part. A killed writer
leaves at most staging files, an orphan part, or a finished shard dataset.json does not
list yet; the next writer of the same identity removes the first two, adopts the third,
and continues after its last finished shard, skipping every key already written. One
writer per split and identity at a time: a lock file enforces it locally; on object
storage (no locks) it is the driver's rule.

A full shard is finished (hash, fsync, manifest part, rename, dataset.json) by one
background thread, in shard order, while the next shard is being written; ``close``
waits for every finish and re-raises the first error. After an error no later shard is
renamed into place, so finished shards always form a gap-free prefix.

One shard's bytes (tar members, headers, hashing) and the thread that finishes full shards
are in shards.shard_file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from shards import locks, storage
from shards.commit import commit_split, describe_shard, shard_entry, summary
from shards.format import Sample, validate_sample
from shards.layout import (
    DATASET_JSON,
    PARTS_DIR,
    QUARANTINE,
    check_writer_id,
    parse_shard_name,
    part_name,
    quarantine_part,
    shard_name,
    shard_order,
)
from shards.manifest import ManifestRows, read_dataset_json, read_parquet, read_quarantine, write_json_atomic
from shards.shard_file import Finisher, ShardFile, member_bytes, tar_bytes

log = logging.getLogger(__name__)

DEFAULT_MAX_COUNT = 1000
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class ShardWriter:
    """Writes samples of one split into size-limited shards (see shards.commit for the protocol).

    Args:
        split_dir (str | Path): ``DATA_ROOT/NAME/SPLIT``, a local path or an fsspec URL.
        max_count (int): samples per shard at most.
        max_bytes (int): encoded bytes per shard at most (a single larger sample still fits alone).
        writer_id (str | None): this writer's identity (letters, digits, _): its shards are
            named ``shard-<writer_id>-NNNNNN.tar`` so that several writers of one split never
            collide. None keeps ``shard-NNNNNN.tar``.
        commit (bool): keep dataset.json up to date after each shard and commit the split
            (manifest.parquet, dataset.json) on close. Parallel writers pass False and their
            driver calls ``shards.commit.commit_split`` once they have all finished.
        skip_existing (bool): read the keys (and quarantine records) already in the split so
            that ``write`` skips them. A pipeline that removes what is done before it writes
            (the annotation pipeline's parallel writers) passes False: a writer then reads
            nothing of the others' shards, which matters when hundreds of them start.

    Use as a context manager; ``write`` returns False for a key already in the split.
    """

    def __init__(
        self,
        split_dir: str | os.PathLike,
        max_count: int = DEFAULT_MAX_COUNT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        writer_id: str | None = None,
        commit: bool = True,
        skip_existing: bool = True,
    ):
        if max_count < 1 or max_bytes < 1:
            raise ValueError("max_count and max_bytes must be positive")
        self.dir = storage.normalize(split_dir)
        self.writer_id = None if writer_id is None else check_writer_id(writer_id)
        self.commit, self.skip_existing = commit, skip_existing
        self.max_count, self.max_bytes = max_count, max_bytes
        storage.makedirs(storage.join(self.dir, PARTS_DIR))
        prefix = locks.LOCK_PREFIX
        self._lock = locks.lock(self.dir, prefix if writer_id is None else f"{prefix}-{writer_id}")
        self._staging = storage.staging_dir(self.dir)
        self._quarantine_loc = (
            storage.join(self.dir, QUARANTINE)
            if writer_id is None
            else storage.join(self.dir, PARTS_DIR, quarantine_part(writer_id))
        )
        self._shards: list[dict[str, Any]] = []  # this writer's finished shards
        self._foreign: list[dict[str, Any]] = []  # other writers' shards dataset.json lists
        self._keys: set[str] = set()
        self._quarantined: set[tuple[str, str]] = set()
        self._pending_quarantine: list[str] = []  # lines not yet written (object stores cannot append)
        try:
            self._recover()
        except BaseException:
            self._lock.release()
            raise
        self._index = len(self._shards)  # index of the shard being written
        self._finisher = Finisher(self._finish_job, lambda job: job[1].abandon())
        self._file: ShardFile | None = None
        # the open shard's manifest rows, samples and tar bytes of its members
        self._rows, self._count, self._payload = ManifestRows(), 0, 0
        self.written = 0  # samples written by this writer (not counting earlier runs)
        self.skipped = 0  # samples skipped because their key was already in the split
        self.closed = False

    # ---- recovery -------------------------------------------------------------------

    def _own(self, shard: str) -> bool:
        parsed = parse_shard_name(shard)
        return parsed is not None and parsed[0] == self.writer_id

    def _part(self, shard: str) -> str:
        return storage.join(self.dir, PARTS_DIR, part_name(shard))

    def _recover(self) -> None:
        """Adopts this writer's finished shards; drops its staging files and orphan parts."""
        listed = {s["name"]: s for s in read_dataset_json(self.dir).get("shards", [])}
        for tmp in self._staging.glob("*.tmp"):
            if self._own(tmp.name[: -len(".tmp")]) or (self.commit and not parse_shard_name(tmp.name[:-4])):
                log.warning("removing %s left by an interrupted writer", tmp)
                tmp.unlink()
        names = set(storage.listdir(self.dir))
        parts = set(storage.listdir(storage.join(self.dir, PARTS_DIR)))
        for p in parts:
            if p.endswith(".tmp") and self._own(p[: -len(".parquet.tmp")]):
                storage.remove(storage.join(self.dir, PARTS_DIR, p))
        index = 0
        while (name := shard_name(index, self.writer_id)) in names:
            if part_name(name) not in parts:
                raise RuntimeError(
                    f"{storage.join(self.dir, name)} has no manifest part {self._part(name)}: the "
                    "split is damaged; run `unilseg shards verify` and remove the shard to redo it"
                )
            self._shards.append(listed.get(name) or describe_shard(self.dir, name))
            index += 1
        own = {s["name"] for s in self._shards}
        for p in parts:  # killed between a part's write and its shard's publication
            if p.endswith(".tar.parquet") and self._own(p[: -len(".parquet")]) and p[: -len(".parquet")] not in own:
                storage.remove(storage.join(self.dir, PARTS_DIR, p))
        self._foreign = [e for n, e in listed.items() if not self._own(n)]
        for entry in self._shards + (self._foreign if self.skip_existing else []):
            self._keys.update(read_parquet(self._part(entry["name"]), ["key"]).column("key").to_pylist())
        if self.skip_existing:
            self._quarantined.update(
                (r.get("input", ""), r.get("reason", "")) for r in read_quarantine(self.dir, sorted(parts))
            )

    # ---- writing --------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """True if a sample with this key is already in the split (finished or pending)."""
        return key in self._keys

    def write(self, sample: Sample) -> bool:
        """Validates and writes a sample; returns False if its key is already present.

        Raises:
            FormatError: the sample breaks the format (callers usually quarantine it).
        """
        if self.closed:
            raise RuntimeError("writer is closed")
        areas = validate_sample(sample)
        if sample.key in self._keys:
            self.skipped += 1
            return False
        members = sorted([(sample.image_ext, sample.image_bytes), ("json", sample.metadata_json())])
        size = sum(member_bytes(len(v)) for _, v in members)
        if self._file is not None and (
            self._count >= self.max_count or tar_bytes(self._payload + size) > self.max_bytes
        ):
            self._finish_shard()
        if self._file is None:
            self._open_shard()
        self._file.add([(f"{sample.key}.{ext}", data) for ext, data in members])  # sorted by extension
        self._payload += size
        self._rows.add(sample, self._current_name, areas)
        self._keys.add(sample.key)
        self._count += 1
        self.written += 1
        return True

    def flush(self) -> None:
        """Waits until every full shard handed to the finisher is finished (published, listed
        in dataset.json) and quarantine records are written; re-raises a finish error. The
        open shard stays open."""
        self._finisher.wait()
        self._flush_quarantine()

    def quarantine(self, input_name: str, reason: str, **extra: Any) -> None:
        """Records a rejected input with its reason (once per input and reason).

        Written at once to a local split; to object storage with the next finished shard,
        ``flush`` or ``close`` (an object is rewritten whole: no append)."""
        if (input_name, reason) in self._quarantined:
            return
        self._quarantined.add((input_name, reason))
        rec = {"input": input_name, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        self._pending_quarantine.append(json.dumps(rec, ensure_ascii=False) + "\n")
        if storage.is_local(self.dir):
            self._flush_quarantine()

    def _flush_quarantine(self) -> None:
        lines, self._pending_quarantine = self._pending_quarantine, []
        if lines:
            storage.append_text(self._quarantine_loc, "".join(lines))

    @property
    def _current_name(self) -> str:
        return shard_name(self._index, self.writer_id)

    def _open_shard(self) -> None:
        self._file = ShardFile(self._staging / (self._current_name + ".tmp"))
        self._rows, self._count, self._payload = ManifestRows(), 0, 0

    def _finish_shard(self) -> None:
        """Hands the open shard to the finisher thread; the next sample starts a new shard."""
        job = (self._current_name, self._file, self._rows, self._count)
        self._file, self._rows, self._count = None, ManifestRows(), 0
        self._index += 1
        self._finisher.submit(job)

    def _finish_job(self, job: tuple[str, ShardFile, ManifestRows, int]) -> None:
        """Finisher thread: closes a full shard, writes its part, then publishes the shard."""
        name, file, rows, count = job
        file.close()
        entry = shard_entry(
            name, file.sha256.hexdigest(), file.size, count, rows.columns["task"], rows.columns["granularity"]
        )
        rows.write(self._part(name), entry)
        storage.publish(self._staging / (name + ".tmp"), storage.join(self.dir, name))
        self._shards.append(entry)
        if not storage.is_local(self.dir):
            self._flush_quarantine()
        if self.commit:
            shards = sorted(self._foreign + self._shards, key=lambda s: shard_order(s["name"]))
            write_json_atomic(
                storage.join(self.dir, DATASET_JSON),
                summary(shards, len(self._quarantined), "incomplete"),
            )

    def close(self) -> dict[str, Any]:
        """Finishes the open shard; with ``commit``, commits the split (manifest.parquet, then
        dataset.json). Returns the split's summary (this writer's alone without ``commit``)."""
        if self.closed:
            return read_dataset_json(self.dir)
        self.closed = True
        try:
            if self._file is not None:
                self._finish_shard()  # opened by a sample, so never empty
            self._finisher.wait()
            self._flush_quarantine()
            if self.commit:
                return commit_split(self.dir, known={s["name"]: s for s in self._shards})
            return summary(self._shards, len(self._quarantined), "uncommitted")
        finally:
            self._finisher.stop()
            self._lock.release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        # Finished samples are kept even when the producer failed: nothing valid is lost.
        self.close()
