"""One training run per run directory, and no worker of an earlier run left writing in it.

Killing `unilseg train` (even with SIGKILL) kills the local Ray it started: Ray fate-shares
its node processes with the driver. Ray Train workers are children of the raylet and notice
its death only later: seen here, they went on for a few steps and could even write
RUN/latest.pt after the kill, racing a re-run started at once. Three locks (flock, released by
the kernel when their holder dies) close that race:

- RUN/.driver.lock: held exclusively by the driver for the whole run; a second driver on the
  same RUN fails at once, naming the first one's pid.
- RUN/.workers.lock: held shared by every Ray Train worker while it runs. A new driver takes
  it exclusively before starting its workers: it waits for an earlier run's workers to be
  gone and stops (SIGKILL) those on this machine that are still there after a grace time.
- each worker also leaves by itself: a watchdog thread ends the process when its parent (the
  raylet) changes, i.e. when the local Ray died with its driver; rank 0 checks the same
  right before it publishes a checkpoint. Its DataLoader processes are killed by the kernel
  when it goes (common.processes.die_with_parent; torch's own check of the parent takes up to 5 s).

flock needs a local (or flock-capable) filesystem; where it is unsupported the locks are
skipped with a debug message and runs behave as before. For a RUN at a URL (object storage
has no locks) the lock files live on this machine, in shards.storage.cache_dir()/run-locks,
named by the URL: they keep two drivers on one machine apart and let a re-run wait out the
workers of a killed run on this machine; workers on other nodes are stopped by Ray itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import UniLSegError
from shards import storage

log = logging.getLogger(__name__)
DRIVER_LOCK = ".driver.lock"
WORKERS_LOCK = ".workers.lock"


class RunBusyError(UniLSegError):
    """Another `unilseg train` is running on the same run directory."""


def lock_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run's lock files live: RUN itself when local, else a folder on this machine
    named by RUN's URL."""
    if storage.is_local(run_dir):
        return Path(storage.local_path(run_dir))
    digest = hashlib.sha256(os.fspath(storage.absolute(run_dir)).encode("utf-8")).hexdigest()[:24]
    return storage.cache_dir() / "run-locks" / digest


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def lock_holders(path: Path) -> list[int]:
    """Pids holding a flock on `path`, from /proc/locks (Linux; [] elsewhere or when unknown)."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF" (a "->" marks a waiter: skipped)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == dev and "->" not in fields:
            pids.append(int(fields[4]))
    return sorted(set(pids))


@contextmanager
def driver_lock(run_dir: str | os.PathLike, grace_s: float = 20.0) -> Iterator[None]:
    """Holds RUN/.driver.lock for the block, after the workers of any earlier run are gone.

    Raises:
        RunBusyError: another driver holds the run directory.
    """
    locks = lock_dir(run_dir)
    path = locks / DRIVER_LOCK
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise RunBusyError(
                f"{run_dir} is in use by another `unilseg train` (pid {other}); wait for it or stop it"
            ) from None
        except OSError as e:  # no flock on this filesystem
            log.debug("no run lock on %s: %s", path, e)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _wait_for_old_workers(locks / WORKERS_LOCK, grace_s)
        yield
    finally:
        os.close(fd)  # releases the lock


def _wait_for_old_workers(path: Path, grace_s: float) -> None:
    """Takes (and releases) the workers' lock exclusively: returns once no worker holds it."""
    fd = _open_lock(path)
    try:
        deadline, killed = time.monotonic() + grace_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as e:
                log.debug("no workers lock on %s: %s", path, e)
                return
            if time.monotonic() > deadline and not killed:
                holders = [p for p in lock_holders(path) if p != os.getpid()]
                log.warning("stopping workers of an earlier run still holding %s: pids %s", path.parent, holders)
                for pid in holders:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                killed, deadline = True, time.monotonic() + grace_s
            elif time.monotonic() > deadline:
                raise RunBusyError(
                    f"workers of an earlier run still hold {path.parent} (pids "
                    f"{lock_holders(path)}); stop them and run again"
                )
            time.sleep(0.2)
    finally:
        os.close(fd)


class WorkerGuard:
    """What a Ray Train worker holds while it runs (see the module docstring).

    Args:
        run_dir: RUN.
        interval: seconds between the watchdog's checks of the parent process.
    """

    def __init__(self, run_dir: str | os.PathLike, interval: float = 0.25):
        self.parent = os.getppid()
        self._fd: int | None = None
        try:
            fd = _open_lock(lock_dir(run_dir) / WORKERS_LOCK)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._fd = fd
        except OSError as e:
            log.debug("no workers lock in %s: %s", run_dir, e)
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(interval,), name="unilseg-orphan-watchdog", daemon=True).start()

    def release(self) -> None:
        """The training function ended: let go of the lock (the actor process may linger a moment)."""
        self._stop.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def orphaned(self) -> bool:
        """True once the process that started this worker (the raylet) is gone."""
        return os.getppid() != self.parent

    def exit_if_orphaned(self) -> None:
        """Ends the process at once (no cleanup, no checkpoint) when orphaned."""
        if self.orphaned():
            os._exit(1)

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.exit_if_orphaned()
