"""common/ray_runtime.py: the one way to reach Ray. Each driver's job carries a name the
dashboard's Jobs page shows (it showed "-" for every job of ours); a kill -9 of the driver of a
private local Ray ends every process of its Ray session within seconds (the raylet's agents once
outlived it by a minute)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from engine_fixtures import kill_annotation_driver, photo
from PIL import Image

from flows.paths import PROJECT_ROOT

_JOBS = """
import json, sys
import ray
from common.ray_runtime import ensure_ray
ensure_ray(num_cpus=1, job_name=sys.argv[1] or None)
jobs = ray._private.worker.global_worker.gcs_client.get_all_job_info()
print(json.dumps([dict(j.config.metadata) for j in jobs.values()]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "given,env,expected",
    [
        ("annotate-and-train/demo: flow run brave-fox", None, "annotate-and-train/demo: flow run brave-fox"),
        ("", "unilseg train", "unilseg train"),  # what the command line sets
        ("", None, "unilseg"),
    ],
)
def test_the_dashboard_shows_each_job_by_name(given, env, expected):
    environ = {k: v for k, v in os.environ.items() if k not in ("UNILSEG_RAY_JOB_NAME", "UNILSEG_RAY_ADDRESS")}
    if env:
        environ["UNILSEG_RAY_JOB_NAME"] = env
    out = subprocess.run(
        [sys.executable, "-c", _JOBS, given],
        env=environ,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [{"job_name": expected}]


def test_the_command_line_names_the_job_after_the_command(monkeypatch):
    from click.testing import CliRunner

    import cli

    monkeypatch.setenv("UNILSEG_RAY_JOB_NAME", "before")  # restored (removed) after the test
    CliRunner().invoke(cli.main, ["shards", "stats", "/nonexistent"])
    assert os.environ["UNILSEG_RAY_JOB_NAME"] == "unilseg shards"


BOUND_S = 20  # seconds a killed driver's Ray processes may take to end (they took ~60 s before)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _writing_under(folder: str) -> list[psutil.Process]:
    """Live processes with a file under ``folder`` open for writing (psutil's view)."""
    out = []
    for proc in psutil.process_iter():
        try:
            if any(f.path.startswith(folder) and f.mode != "r" for f in proc.open_files()) and _running(proc):
                out.append(proc)
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_driver_takes_its_whole_ray_session_along(tmp_path, monkeypatch):
    """An annotation driver with its own local Ray is SIGKILLed mid-run. The session's processes
    are what was below the driver just before the kill (gcs, raylet, dashboard agent, runtime-env
    agent, engine actor, Ray Data workers) plus anything writing in the session's directory;
    none may be left after BOUND_S."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(24):
        Image.fromarray(np.roll(photo("coffee", 96), 5 * i, axis=1)).save(images / f"img-{i}.png")
    engine = {
        "base": "weightfree",
        "max_side": 96,
        "generator": {"name": "crash_generator:Slow", "params": {"n_segments": 80, "seconds": 0.15}},
        "resources": {"num_cpus": 1, "batch_size": 1},
    }
    session: dict = {}

    def snapshot(pid: int) -> None:
        driver = psutil.Process(pid)
        session["procs"] = driver.children(recursive=True)
        session["titles"] = [" ".join(p.cmdline()) for p in session["procs"] if _running(p)]
        logs = [f.path for f in driver.open_files() if "/session_" in f.path and "/logs/" in f.path]
        session["dir"] = logs[0].split("/logs/")[0] + "/"  # the driver writes its own log there

    kill_annotation_driver(
        f"{str(images)!r}, {str(tmp_path / 'out')!r}, engine={engine!r}, actors=1, max_count=1, progress=False",
        str(tmp_path / "out" / "train"),
        timeout_s=300,
        before_kill=snapshot,
    )
    for kind in ("gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "EngineActor"):
        assert any(kind in t for t in session["titles"]), (kind, session["titles"])  # the run was in full swing
    deadline = time.monotonic() + BOUND_S
    while (
        left := {p.pid: p for p in [*session["procs"], *_writing_under(session["dir"])] if _running(p)}
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [(pid, p.name()) for pid, p in left.items()]
