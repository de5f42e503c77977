"""Small facts about local processes, for code that starts helpers and must not leave them behind.

    die_with_parent()        # in a child: the kernel signals it when its parent goes (Linux)
    reaper = start_reaper()  # in a parent: when it goes, so does everything it started (see below)
    reaper.guard(folder)     # ... and every process writing a file under folder
    alive(pid), cmdline(pid), descendants(pid), writing_under(folder)
    free_port()              # a TCP port free on 127.0.0.1 right now
    port_taken(port)         # something listens on (or holds) that port of 127.0.0.1
    http_ok(url)             # an HTTP GET of url answers 200 now (a local server's health)

Linux answers these through prctl and /proc; elsewhere die_with_parent and start_reaper do
nothing and cmdline/descendants/writing_under know nothing, so callers keep a second
way (pid files, locks). Used by the training run locks, the annotation sandbox, the flows'
Prefect server, the local stack and the private local Ray (``common.ray_runtime``); one home
so that each reads /proc the same way.

Why a reaper as well as die_with_parent: PR_SET_PDEATHSIG reaches only a process's own
children. A helper that starts helpers of its own (Ray's raylet starts its dashboard and
runtime-env agents) leaves those grandchildren behind when it is killed with its parent (Ray's
agents then spend 60 s trying to tell the dead GCS that their raylet died). The reaper is a
small process in a session of its own that waits on a pipe only its owner writes to; the
kernel closes the pipe when the owner ends, however it ends (as Ray's own reaper does). It
then SIGKILLs, until none is left, every process that writes a file under a folder the owner
guards (a Ray session directory: every process of a Ray session writes its logs there, whatever
it later does to its title or environment; someone reading them is left alone), and the
processes the owner started before it named such a folder (tracked as the owner's new
descendants, by pid and start time).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_REAPER_POLL_S = 0.5  # how often a reaper looks for its owner's new processes (until a folder is named)
_REAPER_IDLE_S = 5.0  # then how often it looks whether what it guards stopped normally
_REAP_S = 30.0  # how long a reaper keeps killing (a dying process may still start others)
_REAPERS: list[Reaper] = []  # their pipes must stay open as long as this process lives


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


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; field 22 (start time) is [19]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat.parent.name)
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


def http_ok(url: str, timeout: float = 2.0, any_status: bool = False) -> bool:
    """Whether an HTTP GET of ``url`` answers 200 now (with ``any_status``: answers with any HTTP
    status, e.g. 401 from a server that wants credentials we do not send); nothing listening,
    no answer in ``timeout`` and something that does not speak HTTP all count as no."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200 or any_status
    except urllib.error.HTTPError:  # an HTTP answer, not a success
        return any_status
    except (OSError, http.client.HTTPException):
        return False


def writing_under(folder: str) -> list[int]:
    """Pids of the live processes with a file under ``folder`` open for writing (from
    /proc/PID/fd and fdinfo; a reader such as ``tail -f`` on a log there does not count)."""
    prefix = os.path.join(os.path.realpath(folder), "")
    out = []
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd.path).startswith(prefix) and _open_for_writing(fd.path) for fd in os.scandir(fds)):
                out.append(int(fds.parent.name))
        except OSError:  # gone, or not ours to look at
            continue
    return [p for p in out if alive(p)]


def _open_for_writing(fd_path: str) -> bool:
    """Whether /proc/PID/fd/N is open for writing (its fdinfo flags' access mode)."""
    info = Path(fd_path.replace("/fd/", "/fdinfo/")).read_text()
    flags = next(line.split()[1] for line in info.splitlines() if line.startswith("flags:"))
    return int(flags, 8) & (os.O_WRONLY | os.O_RDWR) != 0


class Reaper:
    """The owner's end of a reaper (``start_reaper``)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def guard(self, folder: str) -> bool:
        """When this process ends, every process writing a file under ``folder`` is killed too.
        Returns False if the reaper is gone (nothing guards the folder then)."""
        try:
            self.proc.stdin.write(os.path.realpath(folder).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: it died (or was killed)
            return False
        return True


def start_reaper() -> Reaper | None:
    """Starts a reaper for this process (see the module): once this process has ended, even by
    SIGKILL, it kills the processes this one started from now on (its new descendants) and
    every process writing a file under a folder given to ``Reaper.guard``. Once a folder is
    named, it leaves by itself when nothing of that is left (stopped normally): name a folder
    that its processes already write in. None where there is no /proc."""
    if not Path("/proc/self/fd").is_dir():
        return None
    _REAPERS[:] = [r for r in _REAPERS if r.proc.poll() is None]  # (reaps those that left)
    proc = subprocess.Popen(
        [sys.executable, "-m", "common.processes", "reap", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # a Ctrl-C meant for the owner must not stop it first
    _REAPERS.append(reaper := Reaper(proc))
    return reaper


def _reap(owner: int) -> None:
    """The reaper's loop (``python -m common.processes reap OWNER_PID``)."""
    me, since = os.getpid(), int(_stat_fields(os.getpid())[19])
    folders: list[str] = []
    started: dict[int, str] = {}  # the owner's new descendants: pid -> start time
    buffer = b""
    while True:
        if select.select([sys.stdin], [], [], _REAPER_IDLE_S if folders else _REAPER_POLL_S)[0]:
            data = os.read(sys.stdin.fileno(), 65536)
            if not data:
                break  # the owner is gone
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            folders += [line.decode() for line in lines if line]
        if not folders:  # until a folder is named, its processes are known only as the owner's
            for pid in descendants(owner):
                with contextlib.suppress(OSError):
                    if pid != me and int(start := _stat_fields(pid)[19]) >= since:
                        started.setdefault(pid, start)
        elif not _targets(folders, started, owner):
            return  # stopped normally: nothing is left to reap
    deadline = time.monotonic() + _REAP_S
    while (pids := _targets(folders, started, owner)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _targets(folders: list[str], started: dict[int, str], owner: int) -> set[int]:
    """The live processes a reaper is to kill: never itself, nor its owner (which keeps its own
    logs in a Ray session directory open after ray.shutdown)."""
    out = {p for f in folders for p in writing_under(f)}
    for pid, start in started.items():
        with contextlib.suppress(OSError):
            if _stat_fields(pid)[19] == start and alive(pid):
                out.add(pid)
    out -= {os.getpid(), owner}
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    _reap(int(sys.argv[2]))
