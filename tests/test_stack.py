"""cli/stack.py + flows/serve.py: the local stack serves the deployments, a deployment
triggered through the Prefect CLI completes, nothing listens beyond 127.0.0.1, and `down`
stops every process that `up` started."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest
import yaml

from cli.stack import ROOT, StackConfig, down, up
from tests.flow_fixtures import tiny_config
from unilseg.processes import free_port

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _env_file(path) -> dict[str, str]:
    lines = [ln for ln in open(path).read().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def _listeners(pids: set[int]) -> set[tuple[str, int, int]]:
    return {(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def test_stack_runs_a_deployment_from_the_cli_and_stops_everything(tmp_path):
    ports = {free_port()}
    while len(ports) < 2:  # two calls may hand out the same free port
        ports.add(free_port())
    prefect_port, dashboard_port = sorted(ports)
    cfg = StackConfig(state_dir=str(tmp_path / "state"), prefect_port=prefect_port, dashboard_port=dashboard_port,
                      num_cpus=2, env_file=str(tmp_path / ".env"))
    info = up(cfg)
    tree: set[int] = set()
    try:
        env = {**os.environ, **_env_file(cfg.env_file)}
        assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{cfg.prefect_port}/api"
        config = tmp_path / "tiny.yaml"
        config.write_text(yaml.safe_dump(tiny_config(tmp_path, run_name="served").model_dump(exclude={"storage_options"})))
        run = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "run", "annotate-and-train/default",
             "--params", json.dumps({"config_path": str(config)}), "--watch", "--watch-timeout", "900"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1000)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert (tmp_path / "runs" / "served" / "eval" / "synth" / "metrics.json").exists()

        ls = subprocess.run([sys.executable, "-m", "prefect", "deployment", "ls"], env=env, capture_output=True,
                            text=True, check=True).stdout
        assert "annotate-and-train/demo" in ls and "reannotate/nightly" in ls
        inspect = subprocess.run([sys.executable, "-m", "prefect", "deployment", "inspect", "reannotate/nightly"],
                                 env=env, capture_output=True, text=True, check=True).stdout
        assert "0 3 * * *" in inspect

        sup = psutil.Process(info["supervisor"])
        tree = {sup.pid} | {p.pid for p in sup.children(recursive=True)}
        listening = _listeners(tree)
        assert {port for _, port, _ in listening} >= {cfg.prefect_port, cfg.dashboard_port}
        assert {ip for ip, _, _ in listening} <= LOOPBACK, listening
    finally:
        down(cfg)
    alive = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, [psutil.Process(p).cmdline()[:3] for p in alive]
