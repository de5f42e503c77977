"""Exclusive locks on local directories: one writer per split and writer identity.

    held = lock(split_dir, ".lock-W")   # RuntimeError if another process holds it
    ...
    held.release()                      # and its file is gone
    clear_locks(split_dir, names)       # lock files killed processes left behind

A lock is an flock on a file in the directory. Its file is removed when the lock is released,
so that runs do not leave one file per writer in every split (an annotation run has one writer
identity per write task, new in every run: they piled up). Removing a lock file while others
may be taking it is the classic trap: process A opens the file, B (the holder) unlinks it and
unlocks, A's flock then succeeds on the unlinked file while C creates a new file at the path
and locks that: A and C both hold "the" lock. The rule that closes it: a taker, once its flock
succeeds, checks that the path still names the file it locked, and starts over if not; a
holder (or ``clear_locks``) unlinks the file only while it holds its flock. Then a file at the
path is never replaced while locked, and whoever holds the flock on the path's current file
holds the lock.

Object stores have no locks: there ``lock`` returns one that does nothing, and the rule is the
driver's (one writer per split, or per writer identity). flock is per open file, so this also
keeps out a second writer in the same process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from shards import storage

LOCK_PREFIX = ".lock"  # every lock file's name starts so (".lock", ".lock-<writer>")


class FileLock:
    """An exclusive, non-blocking flock on a local file; the file is removed on release.

    Args:
        path (str): the lock file (created if missing).

    Raises:
        RuntimeError: another open file (process or writer) holds it.
    """

    def __init__(self, path: str):
        self.path = path
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                os.close(fd)
                raise RuntimeError(f"another writer holds {path}") from e
            if _names(path, fd):
                self._fd: int | None = fd
                return
            os.close(fd)  # removed by its holder between our open and our flock: take the new one

    def release(self) -> None:
        """Removes the lock file, then drops the lock (in that order: see the module)."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


class NoLock:
    """The lock of a location that has none (object storage)."""

    def release(self) -> None:
        pass


def _names(path: str, fd: int) -> bool:
    """Whether ``path`` is (still) the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def lock(loc: str | os.PathLike, lock_name: str = LOCK_PREFIX) -> FileLock | NoLock:
    """An exclusive lock named ``lock_name`` on a local directory; a lock that does nothing
    on object storage.

    Raises:
        RuntimeError: another process (or writer) holds it.
    """
    if (p := storage.local_path(loc)) is not None:
        return FileLock(os.path.join(p, lock_name))
    return NoLock()


def clear_locks(loc: str | os.PathLike, names: list[str]) -> list[str]:
    """Removes the lock files among ``names`` (entries of a local directory) that nobody holds:
    what killed processes left. A held one is left alone, and a process taking a lock meanwhile
    ends up with the only one (see the module). Returns the names removed."""
    if (p := storage.local_path(loc)) is None:
        return []
    removed = []
    for name in names:
        if not name.startswith(LOCK_PREFIX):
            continue
        try:
            FileLock(os.path.join(p, name)).release()
        except (RuntimeError, FileNotFoundError):  # held (its writer lives), or the directory went away
            continue
        removed.append(name)
    return removed
