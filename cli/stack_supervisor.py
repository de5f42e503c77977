"""The stack's supervisor: the foreground process (`unilseg stack supervise`, started by
`unilseg stack up`) whose children are the Prefect server, the local Ray head and the process
serving the deployments. It writes STATE_DIR/stack.json once all are up and stops them all
on SIGTERM/SIGINT or when one of them exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from cli.stack_config import ROOT, StackConfig, label_studio_env, label_studio_server, ray_temp_dir, stack_env
from common.errors import UniLSegError
from common.processes import http_ok
from shards import storage


def wait_healthy(what: str, check, timeout: float, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not become healthy in {timeout:.0f} s\n{tail}")


def supervise(cfg: StackConfig) -> None:
    """Runs the stack in the foreground until SIGTERM/SIGINT, then stops it all."""
    # Ray takes seconds to import (BENCHMARKS.md, "Import times"): only the supervisor pays
    # it, not `unilseg --help`
    from common.ray_runtime import start_local_ray

    state = Path(cfg.state_dir)
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stack_env(cfg), **label_studio_env(cfg)}  # the review flows reach Label Studio
    os.environ.update(stack_env(cfg))
    children: list[subprocess.Popen] = []
    stop = _Stop(children, state)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:  # a failed start-up must not leave the already started children behind
        children.append(_start_prefect(cfg, env, logs))
        # (its jobs are told their own GCS address: common.ray_runtime.start_local_ray says why)
        # reap=False: `down` stops the supervisor's whole process tree, and a reaper would also kill
        # the processes of other drivers attached to this cluster (flow runs, users' commands)
        gcs = start_local_ray(
            job_name="unilseg stack: the local cluster's head (runs no work)",
            reap=False,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=cfg.dashboard_port,
            num_cpus=cfg.num_cpus or None,
            _temp_dir=ray_temp_dir(state),
            log_to_driver=True,
        )
        os.environ["UNILSEG_RAY_ADDRESS"] = env["UNILSEG_RAY_ADDRESS"] = gcs  # flows connect here
        wait_healthy("Prefect server", lambda: http_ok(cfg.api_url + "/health"), 90, logs / "prefect-server.log")
        children.append(_child([sys.executable, "-m", "flows.serve"], env, logs / "serve.log", cwd=ROOT))
        children += _start_label_studio(cfg, logs)
        _write_info(state / "stack.json", cfg, children, gcs)
    except Exception:
        traceback.print_exc()
        stop(exit_code=1)
    while True:
        for p in children:
            if p.poll() is not None:
                print(f"stack: child {p.args} exited with {p.returncode}; stopping", file=sys.stderr)
                stop()
        time.sleep(2)


class _Stop:
    """The supervisor's signal handler: stops the children (last started first) and Ray, removes
    stack.json and exits. Runs once; a second signal during the stop does nothing."""

    def __init__(self, children: list[subprocess.Popen], state: Path):
        self.children, self.state, self.stopping = children, state, False

    def __call__(self, *_, exit_code: int = 0) -> None:
        import ray

        if self.stopping:
            return
        self.stopping = True
        for p in reversed(self.children):
            if p.poll() is None:
                p.terminate()
        for p in self.children:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if ray.is_initialized():
            ray.shutdown()  # the driver that started the local cluster stops all its processes
        (self.state / "stack.json").unlink(missing_ok=True)
        sys.exit(exit_code)


def _child(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A child in its own session, its output appended to ``log``."""
    return subprocess.Popen(
        args, env=env, cwd=cwd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _start_prefect(cfg: StackConfig, env: dict[str, str], logs: Path) -> subprocess.Popen:
    """The Prefect server on 127.0.0.1:cfg.prefect_port."""
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(cfg.prefect_port)]
    return _child(args, env, logs / "prefect-server.log")


def _start_label_studio(cfg: StackConfig, logs: Path) -> list[subprocess.Popen]:
    """The stack's Label Studio, when its venv is built (`make label-studio`); it answers once
    its database is ready (the first start migrates it: a minute or more, in the background)."""
    from annotation_engine.review.server import executable

    server = label_studio_server(cfg)
    try:
        executable(server.venv)
    except UniLSegError as e:
        print(f"stack: no Label Studio ({e})", file=sys.stderr)
        return []
    return [server.start(log=logs / "label-studio.log", die_with_us=False).process]


def _write_info(path: Path, cfg: StackConfig, children: list[subprocess.Popen], gcs: str) -> None:
    """stack.json: the supervisor's and children's pids, the Ray address, the config and URLs."""
    info = {
        "supervisor": os.getpid(),
        "children": [p.pid for p in children],
        "ray_address": gcs,
        "config": asdict(cfg),
        "dashboard": cfg.dashboard_url,
        "ui": cfg.api_url[:-4],
        "label_studio": label_studio_server(cfg).url,
    }
    storage.write_bytes(path, json.dumps(info, indent=1).encode())  # whole or absent: up() polls it
