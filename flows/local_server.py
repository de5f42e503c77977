"""A Prefect API server for one process (`python -m flows.pipeline`), that dies with it.

Without PREFECT_API_URL, Prefect 3.8 starts a temporary ("ephemeral") server itself: a uvicorn
subprocess (prefect/server/api/server.py, SubprocessASGIServer) stopped by an atexit hook,
which a SIGKILL never runs: after `kill -9` of a flow run the server was still there 240 s
later, every time. This module starts the same server (the same uvicorn command and
settings) as our own child, which the kernel stops when its parent dies (prctl
PR_SET_PDEATHSIG, Linux), and points this process's Prefect client at it. Its pid is also
recorded in PREFECT_HOME/unilseg-local-server.json, so that the next run stops one whose
parent could not take it along (a platform without PDEATHSIG).

A configured PREFECT_API_URL (the local stack's server, Prefect Cloud) is used as it is; one
where nothing answers is a one-line error naming where it was set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import prefect
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, get_current_settings, temporary_settings

from common.errors import UniLSegError
from common.processes import alive, cmdline, die_with_parent, free_port, http_ok
from shards import storage

PID_FILE = "unilseg-local-server.json"
_APP = "prefect.server.api.server:create_app"


def _term_with_parent() -> None:  # runs in the child between fork and exec
    die_with_parent(sig=signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM


def stop_stale(pid_file: Path) -> int | None:
    """Stops a server recorded in `pid_file` whose parent is gone; returns its pid, if one was."""
    try:
        rec = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    pid, parent = int(rec.get("pid", 0)), int(rec.get("parent", 0))
    stale = pid > 0 and alive(pid) and not alive(parent) and (_APP in cmdline(pid) or not Path("/proc").is_dir())
    if stale:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid if stale else None


def _origin() -> str:
    """Where Prefect found PREFECT_API_URL: the environment, else a .env or profile."""
    if "PREFECT_API_URL" in os.environ:
        return "from the environment"
    if Path(".env").is_file():
        return f"from {Path('.env').resolve()}, which Prefect reads by itself"
    return f"from Prefect's profile {PREFECT_HOME.value()}/profiles.toml"


@contextmanager
def local_server(timeout: float = 120.0) -> Iterator[str]:
    """Runs the block against a Prefect API server that lives exactly as long as this process.

    Yields:
        str: the API URL (the configured one when PREFECT_API_URL is set).

    Raises:
        UniLSegError: PREFECT_API_URL is set but nothing answers there.
        RuntimeError: our server did not answer within `timeout` seconds.
    """
    configured = PREFECT_API_URL.value()
    if configured:
        _check_answers(configured)
        yield configured
        return
    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    pid_file = home / PID_FILE
    stop_stale(pid_file)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = _start_server(port)
    # whole or absent (temp + rename): a reader never sees a half-written record
    storage.write_bytes(pid_file, json.dumps({"pid": proc.pid, "parent": os.getpid(), "url": url}).encode())
    try:
        _wait_healthy(proc, url, timeout)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:  # what the run logged is sent while the server still listens
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        _stop(proc)
        pid_file.unlink(missing_ok=True)


def _check_answers(configured: str) -> None:
    """A configured PREFECT_API_URL must answer (any status: Prefect Cloud answers 401 without its key)."""
    if not http_ok(f"{configured.rstrip('/')}/health", any_status=True):
        raise UniLSegError(
            f"PREFECT_API_URL={configured} ({_origin()}) does not answer: start that server "
            "(`unilseg stack up`) or unset PREFECT_API_URL to run on a private one"
        )


def _start_server(port: int) -> subprocess.Popen:
    """Prefect's API server app under uvicorn on 127.0.0.1:port, a child that dies with us."""
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }  # as Prefect starts its own
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parents[1]),
            "--factory",
            _APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        preexec_fn=_term_with_parent,
        stdin=subprocess.DEVNULL,
    )


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not http_ok(f"{url}/health"):
        if proc.poll() is not None:
            raise RuntimeError(f"the local Prefect server exited with {proc.returncode} before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local Prefect server did not answer on {url} within {timeout:.0f} s")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
