"""cli/stack.py + flows/serve.py: the local stack serves the deployments, a deployment
triggered through the Prefect CLI completes, nothing listens beyond 127.0.0.1, and `down`
stops every process that `up` started."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys

import psutil
import pytest
import yaml

from cli.stack import ROOT, StackConfig, down, up
from common.processes import port_taken
from tests.flow_fixtures import tiny_config

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _env_file(path) -> dict[str, str]:
    lines = [ln for ln in open(path).read().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def _listeners(pids: set[int]) -> set[tuple[str, int, int]]:
    return {
        (c.laddr.ip, c.laddr.port, c.pid)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    }


def _quiet_ports(n: int) -> list[int]:
    """n free ports below Linux's ephemeral range (32768-60999) and above Ray's worker ports
    (10002-19999): the stack starts Ray while its Prefect server is still starting, and Ray's
    own listeners take ephemeral ports, once the very one picked for Prefect."""
    free = (p for p in random.sample(range(20000, 32000), 200) if not port_taken(p))
    return list(itertools.islice(free, n))


def test_a_port_in_use_is_a_one_line_error_before_anything_starts(tmp_path):
    import socket

    from common.errors import UniLSegError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        cfg = StackConfig(state_dir=str(tmp_path / "state"), prefect_port=busy, dashboard_port=_quiet_ports(1)[0])
        with pytest.raises(UniLSegError, match=f"^port {busy} on 127.0.0.1 is in use: set UNILSEG_PREFECT_PORT"):
            up(cfg)
    assert not (tmp_path / "state").exists()  # no supervisor, no logs


def test_stack_runs_a_deployment_from_the_cli_and_stops_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("UNILSEG_LABEL_STUDIO_VENV", str(tmp_path / "none"))  # no Label Studio: test_export has one
    prefect_port, dashboard_port = _quiet_ports(2)
    cfg = StackConfig(
        state_dir=str(tmp_path / "state"), prefect_port=prefect_port, dashboard_port=dashboard_port, num_cpus=2
    )
    info = up(cfg)
    tree: set[int] = set()
    try:
        env = {**os.environ, **_env_file(cfg.env_path)}
        assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{cfg.prefect_port}/api"
        config = tmp_path / "tiny.yaml"
        config.write_text(
            yaml.safe_dump(tiny_config(tmp_path, run_name="served").model_dump(exclude={"storage_options"}))
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefect",
                "deployment",
                "run",
                "annotate-and-train/default",
                "--params",
                json.dumps({"config_path": str(config)}),
                "--watch",
                "--watch-timeout",
                "900",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1000,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert (tmp_path / "runs" / "served" / "eval" / "synth" / "metrics.json").exists()

        ls = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "ls"], env=env, capture_output=True, text=True, check=True
        ).stdout
        assert "annotate-and-train/demo" in ls and "reannotate/nightly" in ls
        inspect = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "inspect", "reannotate/nightly"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
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


def _copy_of_checkout(dst):
    """The tracked files of this checkout (what a fresh clone holds), copied to dst."""
    import shutil

    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    return dst


def test_the_readme_commands_in_any_order_on_a_clone(tmp_path):
    """On a clone: the stack up (what `make demo` leaves running), then down (`make down`), then
    the tests (`make test`). The stack's environment file lives in .state/ and goes with
    `down`; nothing it leaves in the checkout points later commands at its server: the test
    that failed after a demo (a flow run on its own server, run from the checkout) passes."""
    clone = _copy_of_checkout(tmp_path / "clone")
    prefect_port, dashboard_port = _quiet_ports(2)
    env = {
        **os.environ,
        "UNILSEG_PREFECT_PORT": str(prefect_port),
        "UNILSEG_DASHBOARD_PORT": str(dashboard_port),
        "UNILSEG_RAY_CPUS": "2",
    }
    for var in ("PREFECT_API_URL", "UNILSEG_STATE_DIR", "UNILSEG_ENV_FILE", "PYTHONPATH"):
        env.pop(var, None)

    def cli(*args, check=True):
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=check
        )

    def api_url_seen_in_checkout() -> str:
        return cli("prefect", "config", "view", "--show-sources").stdout

    try:
        cli("cli", "stack", "up")
        env_file = clone / ".state" / "stack.env"
        assert _env_file(env_file)["PREFECT_API_URL"] == f"http://127.0.0.1:{prefect_port}/api"
        assert not (clone / ".env").exists()
        assert "PREFECT_API_URL" not in api_url_seen_in_checkout()  # a command run here does not see the stack
    finally:
        down_out = cli("cli", "stack", "down").stdout
    assert f"removed {env_file}" in down_out and "stack stopped" in down_out
    assert not env_file.exists()
    tests = cli("pytest", "-q", "-p", "no:cacheprovider", "tests/test_local_server.py", check=False)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout


def test_down_removes_an_env_file_an_older_stack_left(tmp_path, monkeypatch):
    import cli.stack

    legacy, mine = tmp_path / ".env", tmp_path / "other" / ".env"
    legacy.write_text("# written by `unilseg stack up`\nPREFECT_API_URL=http://127.0.0.1:4200/api\n")
    mine.parent.mkdir()
    mine.write_text("PREFECT_API_URL=http://127.0.0.1:4200/api\n")
    monkeypatch.setattr(cli.stack, "LEGACY_ENV_FILE", legacy)
    down(StackConfig(state_dir=str(tmp_path / "state")))
    assert not legacy.exists()
    monkeypatch.setattr(cli.stack, "LEGACY_ENV_FILE", mine)
    down(StackConfig(state_dir=str(tmp_path / "state")))
    assert mine.exists()  # not ours: the user's own .env stays


def test_the_demo_ends_with_its_headline_figures(tmp_path):
    from cli.stack import headline

    run = tmp_path / "demo"
    (run / "train").mkdir(parents=True)
    (run / "train" / "metrics.jsonl").write_text(
        '{"event": "start", "step": 0}\n{"event": "report", "step": 300, "train_seconds": 120.0}\n'
        '{"event": "report", "step": 600, "train_seconds": 246.0}\n'
    )
    (run / "eval" / "synth-heldout").mkdir(parents=True)
    doc = {
        "run": {"dataset": "synth-heldout", "split": "val", "texts": "all"},
        "metrics": {"res": {"mIoU": 0.61234, "oIoU": 0.6, "n": 2478.0}},  # n is a float in metrics.json
        "first_text": {"res": {"mIoU": 0.63, "oIoU": 0.611, "n": 953}},
    }
    (run / "eval" / "synth-heldout" / "metrics.json").write_text(json.dumps(doc))
    assert headline(run).splitlines() == [
        "Trained 600 steps in 4.1 min of training.",
        "synth-heldout/val (res):",
        "  every text (RefCOCO's protocol)   mIoU 0.612  oIoU 0.600  (2478 expressions)",
        "  first text of each target         mIoU 0.630  oIoU 0.611  (953 expressions)",
    ]
    (run / "engine-eval" / "synth-heldout").mkdir(parents=True)  # the engine scored on held-out images
    engine = {
        "run": {"engine_name": "weightfree", "dataset": "synth-heldout", "split": "val"},
        "masks": {"n_images": 40, "AR@100": 0.2821, "recall@0.5": 0.614, "precision@0.5": None},
        "expressions": {
            "method": "grounding",
            "generated": {"hit_rate@0.5": 0.3547},
            "reference": {"hit_rate@0.5": 0.68},
        },
    }
    (run / "engine-eval" / "synth-heldout" / "metrics.json").write_text(json.dumps(engine))
    assert headline(run).splitlines()[4:] == [
        "The weightfree engine on synth-heldout/val (40 images):",
        "  masks: AR@100 0.282, recall@0.5 0.614, precision@0.5 n/a",
        "  expressions read back by the model: 0.355 of the engine's hit their mask (0.680 of the ground truth's)",
    ]
