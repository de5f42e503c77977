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

Tar headers are built here (``_member_header``, byte-identical to what tarfile and
webdataset.TarWriter(mtime=0) write; tests compare) rather than by a library: writing the
members through tarfile (the calls webdataset.TarWriter makes, into a hashing file object)
ran at well under half this writer's throughput, over the 20 % issue 12 allows
(BENCHMARKS.md, "Library tar code vs the hand-written one"): tarfile copies each TarInfo,
checks it for PAX fields and re-slices a 10 KB stream buffer per member.
webdataset.TarWriter itself would also import webdataset, hence torch, into every converter
process (seconds and hundreds of MB: same section).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
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

log = logging.getLogger(__name__)

DEFAULT_MAX_COUNT = 1000
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# Fixed member mtime so that the same samples give byte-identical shards.
_MTIME = 0  # an int: a float mtime makes tarfile add a PAX header to every member
_MODE, _OWNER = 0o444, "bigdata"  # webdataset.TarWriter's defaults
_HASH_BACKLOG = 8  # samples written but not hashed yet, at most (bounds the memory they hold)
_WRITE_BUFFER = 1 << 20  # bytes per write syscall: each one lets the hasher take the GIL
_FINISH_BACKLOG = 1  # full shards queued for the finisher besides the one it works on


class _ShardFile:
    """A tar shard being written, hashed as it passes (no second read of the shard).

    Members are laid out byte for byte as ``webdataset.TarWriter(mtime=0)`` writes them
    (same headers, user, mode and padding; tests check the bytes), but without its copies:
    TarWriter wraps each value in a BytesIO and tarfile's stream re-slices a 10 KB buffer,
    while here a header, the value and its padding go straight to the buffered file.
    The sha256 runs on a helper thread (hashlib releases the GIL on large buffers), in
    write order, at most _HASH_BACKLOG samples behind.
    """

    def __init__(self, path: Path):
        self._f = open(path, "wb", buffering=_WRITE_BUFFER)
        self.size = 0
        self.sha256 = hashlib.sha256()  # complete once close() returned
        self._pending: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=_HASH_BACKLOG)
        self._hasher = threading.Thread(target=self._hash_loop, name="shard-sha256", daemon=True)
        self._hasher.start()

    def _hash_loop(self) -> None:
        while (pieces := self._pending.get()) is not None:
            for piece in pieces:
                self.sha256.update(piece)

    def _write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._f.write(piece)
            self.size += len(piece)
        self._pending.put(pieces)

    def add(self, members: list[tuple[str, bytes]]) -> None:
        """Appends members: each a ustar header (PAX only if the name needs it), data, padding."""
        pieces = []
        for name, data in members:
            pieces += [_member_header(name, len(data)), data]
            if len(data) % tarfile.BLOCKSIZE:
                pieces.append(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
        self._write(pieces)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        """Writes the end marker (two zero blocks, padded to a whole record), syncs, closes."""
        self._write([tarfile.NUL * (_tar_bytes(self.size) - self.size)])
        self._pending.put(None)
        self._hasher.join()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def abandon(self) -> None:
        """Stops the hasher and closes the file, unfinished (it stays a temp file)."""
        self._pending.put(None)
        self._hasher.join()
        self._f.close()


class _Finisher:
    """Runs ``finish(job)`` for each submitted job on one thread, in submission order.

    The first error stops the finishing: later jobs are only ``abandon(job)``-ed, and the
    error is re-raised by the next ``submit`` or ``wait``.

    Args:
        finish (Callable): finishes one job (runs on the finisher thread).
        abandon (Callable): releases a job that will not be finished.
    """

    def __init__(self, finish: Callable[[Any], None], abandon: Callable[[Any], None]):
        self._finish, self._abandon = finish, abandon
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=_FINISH_BACKLOG)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="shard-finisher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self.error is None:
                    self._finish(job)
                else:
                    self._abandon(job)
            except BaseException as e:  # handed to the writer's thread by submit/wait
                self.error = self.error or e
                with contextlib.suppress(Exception):  # the first error is the one worth reporting
                    self._abandon(job)
            finally:
                self._jobs.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"finishing a shard failed: {self.error}") from self.error

    def submit(self, job: Any) -> None:
        """Queues a job (blocks while the backlog is full), or abandons it and raises an earlier error."""
        if self.error is not None:
            self._abandon(job)
            self._raise()
        self._jobs.put(job)

    def wait(self) -> None:
        """Waits until every queued job is done; raises the first finish error, if any."""
        self._jobs.join()
        self._raise()

    def stop(self) -> None:
        """Waits for every queued job and ends the thread (idempotent); raises nothing."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


def _tarfile_header(name: str, size: int) -> bytes:
    """tarfile's header of a regular member with our mtime, mode and owner (PAX format)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, _MTIME, _MODE
    info.uname = info.gname = _OWNER
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# Header fields: name [0:100], size [124:136], checksum [148:156]; the rest never changes.
_TEMPLATE = _tarfile_header("", 0)
_TEMPLATE_SUM = 8 * ord(" ") + sum(_TEMPLATE[100:124]) + sum(_TEMPLATE[136:148]) + sum(_TEMPLATE[156:])


def _member_header(name: str, size: int) -> bytes:
    """The header tarfile writes for a member, built from a template when no PAX record is needed.

    A name of at most 100 ASCII characters (every key.ext of ours) and a size below 8 GiB
    fit a plain ustar header: name, size and checksum are filled into the template, far
    cheaper than tarfile's per-member work. Anything else goes through tarfile itself (tests check equality).
    """
    if len(name) > 100 or size >= 8**11 or not name.isascii():
        return _tarfile_header(name, size)
    raw = name.encode("ascii")
    size_field = b"%011o\0" % size
    chksum = _TEMPLATE_SUM + sum(raw) + sum(size_field)  # unsigned byte sum, checksum field as spaces
    return b"".join(
        (
            raw,
            bytes(100 - len(raw)),
            _TEMPLATE[100:124],
            size_field,
            _TEMPLATE[136:148],
            b"%06o\0 " % chksum,
            _TEMPLATE[156:],
        )
    )


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
        self._finisher = _Finisher(self._finish_job, lambda job: job[1].abandon())
        self._file: _ShardFile | None = None
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
        size = sum(_member_bytes(len(v)) for _, v in members)
        if self._file is not None and (
            self._count >= self.max_count or _tar_bytes(self._payload + size) > self.max_bytes
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
        self._file = _ShardFile(self._staging / (self._current_name + ".tmp"))
        self._rows, self._count, self._payload = ManifestRows(), 0, 0

    def _finish_shard(self) -> None:
        """Hands the open shard to the finisher thread; the next sample starts a new shard."""
        job = (self._current_name, self._file, self._rows, self._count)
        self._file, self._rows, self._count = None, ManifestRows(), 0
        self._index += 1
        self._finisher.submit(job)

    def _finish_job(self, job: tuple[str, _ShardFile, ManifestRows, int]) -> None:
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


def _member_bytes(n: int) -> int:
    """Bytes a member of n bytes takes in a tar: a 512-byte header plus 512-byte blocks."""
    return 512 + -(-n // 512) * 512


def _tar_bytes(payload: int) -> int:
    """Size of a finished tar: members, the 1024-byte end marker, padded to 10240-byte records."""
    return -(-(payload + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
