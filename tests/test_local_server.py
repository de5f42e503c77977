"""flows/local_server.py: the Prefect server of `python -m flows.pipeline` dies with its parent,
even on SIGKILL; a server whose parent is gone is stopped by the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from common.processes import alive, cmdline
from flows.local_server import _APP, PID_FILE, stop_stale
from flows.paths import PROJECT_ROOT


def _fake_server() -> subprocess.Popen:
    """A process whose command line looks like the server's."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", _APP])
    deadline = time.monotonic() + 10
    while _APP not in cmdline(p.pid) and time.monotonic() < deadline:  # /proc shows it once exec is done
        time.sleep(0.02)
    return p


def test_a_server_whose_parent_is_gone_is_stopped(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    server = _fake_server()
    try:
        (tmp_path / PID_FILE).write_text(json.dumps({"pid": server.pid, "parent": gone.pid}))
        assert stop_stale(tmp_path / PID_FILE) == server.pid
        assert server.wait(timeout=15) is not None and not (tmp_path / PID_FILE).exists()
        # a record whose parent still lives (this process) is left alone
        other = _fake_server()
        (tmp_path / PID_FILE).write_text(json.dumps({"pid": other.pid, "parent": os.getpid()}))
        assert stop_stale(tmp_path / PID_FILE) is None and alive(other.pid)
        other.kill()
    finally:
        server.kill()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_server_dies_with_a_killed_flow_run(tmp_path):
    """`python -m flows.pipeline my.yaml` killed with SIGKILL once its server answers: the server
    is gone within seconds (Prefect's own ephemeral server outlived such a kill by minutes)."""
    cfg = tmp_path / "my.yaml"
    cfg.write_text(
        f"run_name: k\ndata_root: {tmp_path / 'data'}\nruns_root: {tmp_path / 'runs'}\nannotate: null\n"
        f"labeled:\n  - {{name: synth, format: synth-shapes, src: {tmp_path / 'src'}, synth_images: 400}}\n"
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    run = subprocess.Popen(
        [sys.executable, "-m", "flows.pipeline", str(cfg)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = tmp_path / "prefect" / PID_FILE
    deadline, rec = time.monotonic() + 400, None
    try:
        while time.monotonic() < deadline and run.poll() is None:
            if pid_file.exists():
                rec = json.loads(pid_file.read_text())
                try:
                    with urllib.request.urlopen(rec["url"] + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.5)
        assert rec is not None and run.poll() is None, "the flow run ended before its server answered"
        assert rec["parent"] == run.pid and alive(rec["pid"])
    finally:
        run.kill()
        run.wait()
    deadline = time.monotonic() + 20
    while alive(rec["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(rec["pid"]), "the flow run's Prefect server outlived it"


def test_a_configured_server_that_does_not_answer_is_one_line(tmp_path):
    """A PREFECT_API_URL where nothing listens (a .env left in the working directory, which
    Prefect reads by itself) stops `python -m flows.pipeline` in one line naming the file,
    before any stage; it was a traceback ("Failed to reach API")."""
    from common.processes import free_port

    cfg = tmp_path / "my.yaml"
    cfg.write_text(f"run_name: e\ndata_root: {tmp_path / 'data'}\nruns_root: {tmp_path / 'runs'}\nannotate: null\n")
    url = f"http://127.0.0.1:{free_port()}/api"
    (tmp_path / ".env").write_text(f"PREFECT_API_URL={url}\n")
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("PREFECT_API_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "flows.pipeline", str(cfg)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"Error: PREFECT_API_URL={url} (from {tmp_path / '.env'}, which Prefect reads "
        "by itself) does not answer: start that server (`unilseg stack up`) or unset "
        "PREFECT_API_URL to run on a private one"
    ), run.stderr
    assert not (tmp_path / "runs").exists()
