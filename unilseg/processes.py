"""Small facts about local processes, for code that starts helpers and must not leave them behind.

    die_with_parent()        # in a child: the kernel signals it when its parent goes (Linux)
    alive(pid), cmdline(pid), descendants(pid)
    free_port()              # a TCP port free on 127.0.0.1 right now
    port_taken(port)         # something listens on (or holds) that port of 127.0.0.1
    http_ok(url)             # an HTTP GET of url answers 200 now (a local server's health)

Linux answers these through prctl and /proc; elsewhere die_with_parent does nothing and
cmdline/descendants know nothing, so callers keep a second way (pid files, locks).
Used by the training run locks, the annotation sandbox, the flows' Prefect server and the
local stack; one home so that each reads /proc the same way.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import urllib.request
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(*_: object, sig: int = signal.SIGKILL) -> None:
    """Asks the kernel to send ``sig`` to this process when the thread that started it ends
    (prctl PR_SET_PDEATHSIG; elsewhere nothing). Usable as a DataLoader ``worker_init_fn`` and
    as a ``preexec_fn`` (wrap it to choose the signal)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def alive(pid: int) -> bool:
    """True while the process runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): trust kill()
        return True


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" when unknown)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether a server could not bind ``port`` on 127.0.0.1 now (a listener holds it). Connections
    of a stopped server that linger in TIME_WAIT do not count, as servers set SO_REUSEADDR too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP GET of ``url`` answers 200 now; nothing listening, no answer in ``timeout``
    and something that does not speak HTTP all count as no."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (OSError, http.client.HTTPException):
        return False
