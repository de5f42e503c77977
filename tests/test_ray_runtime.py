"""The private local Ray of a driver (unilseg/ray_runtime.py): a kill -9 of the driver ends every
process of its Ray session within seconds (the raylet's agents once outlived it by a minute)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from engine_fixtures import kill_annotation_driver, photo

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
    engine = {"base": "weightfree", "max_side": 96, "generator": {"name": "crash_generator:Slow", "params": {
        "n_segments": 80, "seconds": 0.15}}, "resources": {"num_cpus": 1, "batch_size": 1}}
    session: dict = {}

    def snapshot(pid: int) -> None:
        driver = psutil.Process(pid)
        session["procs"] = driver.children(recursive=True)
        session["titles"] = [" ".join(p.cmdline()) for p in session["procs"] if _running(p)]
        logs = [f.path for f in driver.open_files() if "/session_" in f.path and "/logs/" in f.path]
        session["dir"] = logs[0].split("/logs/")[0] + "/"  # the driver writes its own log there

    kill_annotation_driver(f"{str(images)!r}, {str(tmp_path / 'out')!r}, engine={engine!r}, actors=1, max_count=1, "
                           "progress=False", str(tmp_path / "out" / "train"), timeout_s=300, before_kill=snapshot)
    for kind in ("gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "EngineActor"):
        assert any(kind in t for t in session["titles"]), (kind, session["titles"])  # the run was in full swing
    deadline = time.monotonic() + BOUND_S
    while (left := {p.pid: p for p in [*session["procs"], *_writing_under(session["dir"])] if _running(p)}) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [(pid, p.name()) for pid, p in left.items()]
