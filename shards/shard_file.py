"""One shard being written: tar members laid out byte for byte as webdataset writes them,
hashed as they pass; and the thread that finishes full shards in order (shards.writer).

Tar headers are built here (``member_header``, byte-identical to what tarfile and
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
import os
import queue
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Fixed member mtime so that the same samples give byte-identical shards.
_MTIME = 0  # an int: a float mtime makes tarfile add a PAX header to every member
_MODE, _OWNER = 0o444, "bigdata"  # webdataset.TarWriter's defaults
_HASH_BACKLOG = 8  # samples written but not hashed yet, at most (bounds the memory they hold)
_WRITE_BUFFER = 1 << 20  # bytes per write syscall: each one lets the hasher take the GIL
FINISH_BACKLOG = 1  # full shards queued for the finisher besides the one it works on


class ShardFile:
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
            pieces += [member_header(name, len(data)), data]
            if len(data) % tarfile.BLOCKSIZE:
                pieces.append(tarfile.NUL * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
        self._write(pieces)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        """Writes the end marker (two zero blocks, padded to a whole record), syncs, closes."""
        self._write([tarfile.NUL * (tar_bytes(self.size) - self.size)])
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


class Finisher:
    """Runs ``finish(job)`` for each submitted job on one thread, in submission order.

    The first error stops the finishing: later jobs are only ``abandon(job)``-ed, and the
    error is re-raised by the next ``submit`` or ``wait``.

    Args:
        finish (Callable): finishes one job (runs on the finisher thread).
        abandon (Callable): releases a job that will not be finished.
    """

    def __init__(self, finish: Callable[[Any], None], abandon: Callable[[Any], None]):
        self._finish, self._abandon = finish, abandon
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=FINISH_BACKLOG)
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


def tarfile_header(name: str, size: int) -> bytes:
    """tarfile's header of a regular member with our mtime, mode and owner (PAX format)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, _MTIME, _MODE
    info.uname = info.gname = _OWNER
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# Header fields: name [0:100], size [124:136], checksum [148:156]; the rest never changes.
_TEMPLATE = tarfile_header("", 0)
_TEMPLATE_SUM = 8 * ord(" ") + sum(_TEMPLATE[100:124]) + sum(_TEMPLATE[136:148]) + sum(_TEMPLATE[156:])


def member_header(name: str, size: int) -> bytes:
    """The header tarfile writes for a member, built from a template when no PAX record is needed.

    A name of at most 100 ASCII characters (every key.ext of ours) and a size below 8 GiB
    fit a plain ustar header: name, size and checksum are filled into the template, far
    cheaper than tarfile's per-member work. Anything else goes through tarfile itself (tests check equality).
    """
    if len(name) > 100 or size >= 8**11 or not name.isascii():
        return tarfile_header(name, size)
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


def member_bytes(n: int) -> int:
    """Bytes a member of n bytes takes in a tar: a 512-byte header plus 512-byte blocks."""
    return 512 + -(-n // 512) * 512


def tar_bytes(payload: int) -> int:
    """Size of a finished tar: members, the 1024-byte end marker, padded to 10240-byte records."""
    return -(-(payload + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
