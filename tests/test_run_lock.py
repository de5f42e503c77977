"""unilseg/run_lock.py: one driver per run dir; a re-run waits out, then stops, an earlier run's
workers; a worker whose parent dies (the raylet of a killed driver's Ray) exits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from common.processes import alive
from unilseg.run_lock import WORKERS_LOCK, driver_lock, lock_holders

HOLD_SHARED = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
time.sleep(120)
"""

# a parent that starts a "worker" (WorkerGuard in a child), prints the child's pid, then sleeps
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import sys, time; from unilseg.run_lock import WorkerGuard; "
                          "WorkerGuard(sys.argv[1], interval=0.1); print('guarded', flush=True); time.sleep(120)",
                          sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "guarded"
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_second_driver_on_the_same_run_fails_at_once(tmp_path):
    with driver_lock(tmp_path / "run"):
        code = (
            "import sys; from unilseg.run_lock import driver_lock\n"
            "try:\n    driver_lock(sys.argv[1]).__enter__()\nexcept Exception as e:\n    print(e)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True, timeout=60
        ).stdout
        assert f"in use by another `unilseg train` (pid {os.getpid()})" in out
    with driver_lock(tmp_path / "run"):  # released: the next run takes it
        pass


def test_driver_waits_out_then_stops_an_earlier_runs_worker(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = subprocess.Popen(
        [sys.executable, "-c", HOLD_SHARED, str(run / WORKERS_LOCK)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stale.stdout.readline().strip() == "held"
        assert lock_holders(run / WORKERS_LOCK) == [stale.pid]
        t0 = time.monotonic()
        with driver_lock(run, grace_s=1.0):
            waited = time.monotonic() - t0
            assert stale.wait(timeout=10) == -signal.SIGKILL  # stopped, not merely outlived
        assert 1.0 <= waited < 10
    finally:
        stale.kill()


def test_worker_exits_when_its_parent_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert alive(worker) and lock_holders(tmp_path / WORKERS_LOCK) == [worker]
    parent.kill()  # as the raylet dies with a SIGKILLed driver
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker), "the orphaned worker kept running"
    assert lock_holders(tmp_path / WORKERS_LOCK) == []


def test_a_finished_worker_lets_go_of_the_lock(tmp_path):
    from unilseg.run_lock import WorkerGuard

    guard = WorkerGuard(tmp_path)
    assert lock_holders(tmp_path / WORKERS_LOCK) == [os.getpid()] and not guard.orphaned()
    guard.release()  # the actor process may linger after its training function returned
    assert lock_holders(tmp_path / WORKERS_LOCK) == []
