"""Local directory locks: exclusive, their files removed on release (they once piled up, one per
writer identity and run), stale ones cleared, and no window in which two takers both hold a lock
whose file is being removed."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from shards import locks


def test_a_lock_is_exclusive_and_leaves_no_file(tmp_path):
    held = locks.lock(tmp_path, ".lock-a")
    assert (tmp_path / ".lock-a").exists()
    with pytest.raises(RuntimeError, match="another writer holds"):
        locks.lock(tmp_path, ".lock-a")
    other = locks.lock(tmp_path, ".lock-b")  # another identity: no conflict
    held.release()
    other.release()
    held.release()  # twice is harmless
    assert list(tmp_path.iterdir()) == []
    locks.lock(tmp_path, ".lock-a").release()
    assert list(tmp_path.iterdir()) == []
    locks.lock("s3://bucket/split", ".lock-a").release()  # object storage: no lock, nothing written


def _stale_open(monkeypatch, fd: int) -> None:
    """The next os.open in shards.locks returns ``fd``: a taker that opened the lock file just
    before its holder released (and removed) it."""
    real, calls = os.open, []

    def open_(*args, **kwargs):
        calls.append(args)
        return fd if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(locks.os, "open", open_)


def test_a_taker_holding_a_removed_lock_file_starts_over(tmp_path, monkeypatch):
    """The classic trap of removing lock files: a taker opens the file, the holder unlinks it and
    unlocks, the taker's flock then succeeds on the unlinked file while a newcomer has created and
    locked a new one. The taker must see that the path names another file, and be refused."""
    path = tmp_path / ".lock-w"
    holder = locks.lock(tmp_path, ".lock-w")
    stale = os.open(path, os.O_RDWR)
    holder.release()
    newcomer = locks.lock(tmp_path, ".lock-w")  # a new file at the path, locked
    _stale_open(monkeypatch, stale)
    with pytest.raises(RuntimeError, match="another writer holds"):
        locks.lock(tmp_path, ".lock-w")  # its flock on the old file succeeds; the check refuses it
    monkeypatch.undo()
    newcomer.release()

    # no newcomer: the stale taker starts over and holds the file now at the path
    holder = locks.lock(tmp_path, ".lock-w")
    stale = os.open(path, os.O_RDWR)
    holder.release()
    _stale_open(monkeypatch, stale)
    taker = locks.lock(tmp_path, ".lock-w")
    monkeypatch.undo()
    assert os.path.samestat(os.fstat(taker._fd), os.stat(path))
    with pytest.raises(RuntimeError, match="another writer holds"):
        locks.lock(tmp_path, ".lock-w")
    taker.release()
    assert not path.exists()


def test_clear_locks_removes_only_what_killed_processes_left(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        from shards import locks
        locks.lock({str(tmp_path)!r}, ".lock-killed")
        os.kill(os.getpid(), 9)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert (tmp_path / ".lock-killed").exists()  # a kill -9 leaves its file
    live = locks.lock(tmp_path, ".lock-live")
    (tmp_path / "shard-a-000000.tar").write_bytes(b"")  # not a lock: never touched
    names = sorted(p.name for p in tmp_path.iterdir())
    assert locks.clear_locks(tmp_path, names) == [".lock-killed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock-live", "shard-a-000000.tar"]
    with pytest.raises(RuntimeError, match="another writer holds"):
        locks.lock(tmp_path, ".lock-live")  # the live writer still holds its lock
    live.release()
    assert locks.clear_locks("s3://bucket/split", [".lock-x"]) == []


def _contend(folder: str, rounds: int, overlaps) -> None:
    """Takes and releases one lock ``rounds`` times (or clears it), checking that nobody else is
    inside while it holds it."""
    inside = os.path.join(folder, "inside")
    for i in range(rounds):
        if i % 3 == 2:
            locks.clear_locks(folder, [".lock-w"])
            continue
        try:
            held = locks.lock(folder, ".lock-w")
        except RuntimeError:
            continue
        try:
            os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            with overlaps.get_lock():
                overlaps.value += 1
        else:
            os.unlink(inside)
        held.release()


def test_contending_takers_and_clearers_never_hold_it_together(tmp_path):
    """Four processes take, release and clear one lock as fast as they can; none ever finds
    another inside. (An unlink without the takers' check lets two in: the trap above.)"""
    ctx = multiprocessing.get_context("spawn")
    overlaps = ctx.Value("i", 0)
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), 3000, overlaps)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert overlaps.value == 0
    assert not (tmp_path / ".lock-w").exists()
