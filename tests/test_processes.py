"""common/processes.py: the port and health checks of the local servers."""

from __future__ import annotations

import socket

from common.processes import free_port, port_taken


def test_port_taken_sees_a_listener_and_not_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_taken(port)
    assert not port_taken(port)
    assert not port_taken(free_port())


def test_http_ok_is_true_only_for_a_200():
    import http.server
    import threading

    from common.processes import http_ok

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Health) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert http_ok(f"{url}/health") and not http_ok(f"{url}/other")
        server.shutdown()
    assert not http_ok(f"http://127.0.0.1:{free_port()}/health")  # nobody listening

    with socket.socket() as s:  # something that answers, but not in HTTP
        s.bind(("127.0.0.1", 0))
        s.listen()

        def junk():
            conn, _ = s.accept()
            conn.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\r\n")
            conn.close()

        threading.Thread(target=junk, daemon=True).start()
        assert not http_ok(f"http://127.0.0.1:{s.getsockname()[1]}/health")


# ---- the reaper ------------------------------------------------------------------------------

OWNER = """
import os, subprocess, sys, time
sys.path[:0] = {path!r}
from common.processes import start_reaper
reaper = start_reaper()
folder = sys.argv[1]
own_log = open(os.path.join(folder, "owner.log"), "w")  # as a Ray driver keeps its own log open
# a helper that dies with us (as Ray's raylet does) and starts a helper of its own that does not
# (as the raylet's agents): the grandchild holds a file under `folder`, or nothing
helper = subprocess.Popen([sys.executable, "-c", '''
import os, subprocess, sys, time
from common.processes import die_with_parent
die_with_parent()
hold = sys.argv[1]
code = "import sys, time; f = open(sys.argv[1], 'w') if sys.argv[1] else None; time.sleep(600)"
g = subprocess.Popen([sys.executable, "-c", code, hold], start_new_session=True)
while hold and not os.path.exists(hold):  # it holds the file from now on
    time.sleep(0.05)
print(g.pid, flush=True)
time.sleep(600)
''', os.path.join(folder, "log") if sys.argv[2] == "hold" else ""], stdout=subprocess.PIPE, text=True)
grandchild = int(helper.stdout.readline())
if sys.argv[3] == "guard":
    reaper.guard(folder)
print(grandchild, reaper.proc.pid, flush=True)
time.sleep(600)
"""


def _owner(tmp_path, hold: str, guard: str):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(path=sys.path), str(tmp_path), hold, guard],
        stdout=subprocess.PIPE,
        text=True,
    )
    grandchild, reaper = map(int, proc.stdout.readline().split())
    return proc, grandchild, reaper


def _gone_within(pids, seconds: float) -> bool:
    import time

    from common.processes import alive

    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_reaper_kills_what_outlives_a_killed_owner(tmp_path):
    """kill -9 of the owner: its own helper dies with it (die_with_parent), and the helper's
    helper, which nothing ties to the owner but a file under the guarded folder, is killed by the
    reaper, which then leaves. Without the reaper it would sleep on for ten minutes."""
    import os
    import signal
    import subprocess
    import sys

    from common.processes import alive, writing_under

    proc, grandchild, reaper = _owner(tmp_path, "hold", "guard")
    # someone reading a log there (tail -f) is not part of what the owner started
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; f = open(sys.argv[1]); print(1, flush=True); time.sleep(600)",
            str(tmp_path / "log"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    reader.stdout.readline()
    try:
        assert alive(grandchild) and alive(reaper) and set(writing_under(str(tmp_path))) == {grandchild, proc.pid}
        proc.kill()
        proc.wait()
        assert _gone_within([grandchild, reaper], 10)
        assert reader.poll() is None
    finally:
        reader.kill()
        for p in (grandchild, reaper):
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_before_a_folder_is_named_the_reaper_kills_the_owners_new_processes(tmp_path):
    """A kill while Ray is still starting (no session folder named yet): the processes the owner
    started after its reaper are killed all the same (tracked as its descendants)."""
    import os
    import signal
    import time

    from common.processes import alive

    proc, grandchild, reaper = _owner(tmp_path, "none", "no-guard")
    try:
        time.sleep(5)  # the reaper looks at the owner's descendants every 0.5 s
        proc.kill()
        proc.wait()
        assert _gone_within([grandchild, reaper], 10)
    finally:
        for p in (grandchild, reaper):
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_reaper_leaves_when_what_it_guards_stopped_normally(tmp_path):
    """What it guards stopped (ray.shutdown), its owner lives on, still writing its own log in the
    folder: the reaper leaves by itself."""
    import os
    import signal

    from common.processes import alive

    proc, grandchild, reaper = _owner(tmp_path, "hold", "guard")
    try:
        os.kill(grandchild, signal.SIGTERM)  # the session stopped; the owner lives on
        assert _gone_within([reaper], 30) and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        for p in (grandchild, reaper):
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_http_ok_tells_a_401_from_nothing_listening():
    """A server that wants credentials (Prefect Cloud without its key) answers: with any_status
    that counts; a port where nothing listens never does."""
    import http.server
    import threading

    from common.processes import free_port, http_ok

    class Unauthorized(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/health"
        assert not http_ok(url) and http_ok(url, any_status=True)
    finally:
        server.shutdown()
    assert not http_ok(f"http://127.0.0.1:{free_port()}/api/health", any_status=True)
