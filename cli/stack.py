"""The local stack behind `make demo`: Prefect server, Ray head with its dashboard, and the
process serving our deployments, all on 127.0.0.1, all children of one supervisor.

    unilseg stack up      # start in the background, wait until healthy, write STATE_DIR/stack.env
    unilseg stack down    # stop everything `up` started, remove stack.env
    unilseg stack status

State (Prefect's SQLite database, Ray's temp dir, logs, pids) lives in STATE_DIR
(default ./.state). `down` signals the supervisor, which stops its children and Ray.

The environment for other shells goes to STATE_DIR/stack.env, never to ./.env: Prefect
(pydantic-settings) and other tools read a .env in the working directory by themselves, so
a .env naming the stack's server made every later command in the checkout use it, and fail
once the stack was down (`python -m flows.pipeline`: "Failed to reach API").
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from common import LOOPBACK_ENV
from common.errors import UniLSegError
from common.processes import alive, descendants, http_ok, port_taken
from flows.paths import PROJECT_ROOT
from shards import storage

ROOT = PROJECT_ROOT


@dataclass
class StackConfig:
    """Where and on which ports the local stack runs.

    Attributes:
        state_dir (str): Prefect home, Ray temp dir, logs and pids.
        prefect_port (int): Prefect API/UI port on 127.0.0.1.
        dashboard_port (int): Ray dashboard port on 127.0.0.1.
        num_cpus (int): CPUs Ray may use (0 = all).
        env_file (str): where `up` writes the environment for other shells (removed by `down`);
            empty: STATE_DIR/stack.env.
    """

    state_dir: str = str(ROOT / ".state")
    prefect_port: int = 4200
    dashboard_port: int = 8265
    num_cpus: int = 0
    env_file: str = ""

    # The supervisor runs in its own process: the config travels there as environment.
    _ENV = {
        "state_dir": "UNILSEG_STATE_DIR",
        "prefect_port": "UNILSEG_PREFECT_PORT",
        "dashboard_port": "UNILSEG_DASHBOARD_PORT",
        "num_cpus": "UNILSEG_RAY_CPUS",
        "env_file": "UNILSEG_ENV_FILE",
    }

    @classmethod
    def from_env(cls) -> StackConfig:
        kw = {f: type(getattr(cls, f))(os.environ[e]) for f, e in cls._ENV.items() if e in os.environ}
        return cls(**kw)

    def to_env(self) -> dict[str, str]:
        return {e: str(getattr(self, f)) for f, e in self._ENV.items()}

    @property
    def env_path(self) -> Path:
        return Path(self.env_file or Path(self.state_dir) / "stack.env")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"


def stack_env(cfg: StackConfig) -> dict[str, str]:
    """Environment every process of the stack (and the user's shells) needs."""
    state = Path(cfg.state_dir)
    return {
        "PREFECT_API_URL": cfg.api_url,
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_UI_URL": f"http://127.0.0.1:{cfg.prefect_port}",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        **LOOPBACK_ENV,  # Ray's listeners on 127.0.0.1
        # Ray 2.60 turns token auth on; drivers joining the stack's head must say so.
        "RAY_AUTH_MODE": "token",
        "HF_HUB_OFFLINE": "1",
    }


def ray_temp_dir(state: Path) -> str:
    """Ray's session dir: STATE/ray, unless that path is too long for Ray's unix sockets
    (107 bytes including ~70 of Ray's own), then a short per-state-dir name in /tmp."""
    path = state.resolve() / "ray"
    if len(str(path)) <= 36:
        return str(path)
    return str(Path(tempfile.gettempdir()) / f"unilseg-ray-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}")


ENV_FILE_HEADER = "# written by `unilseg stack up`"
LEGACY_ENV_FILE = ROOT / ".env"  # where stacks before Dec 2026 wrote it (see the module docstring)


def write_env_file(cfg: StackConfig, ray_address: str) -> None:
    """Writes the env file so that `set -a; . .state/stack.env; set +a` prepares another shell."""
    path = cfg.env_path
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={v}" for k, v in {**stack_env(cfg), "UNILSEG_RAY_ADDRESS": ray_address}.items()]
    storage.write_bytes(path, (ENV_FILE_HEADER + "\n" + "\n".join(lines) + "\n").encode())


def remove_env_files(cfg: StackConfig) -> list[Path]:
    """Removes the stack's env file, and a ./.env an older stack wrote (only if it says so in
    its first line: a .env of the user's stays). Returns what was removed."""
    removed = []
    for path in (cfg.env_path, LEGACY_ENV_FILE):
        try:
            ours = path.read_text().startswith(ENV_FILE_HEADER)
        except OSError:
            continue
        if ours:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def dashboard_sign_in() -> str:
    """How to get past the Ray dashboard's "Authentication Token Required" page: Ray 2.60 runs
    with token auth, and the page asks for the token the cluster was started with."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        where = "the value of RAY_AUTH_TOKEN"
    else:
        where = f"the token in {os.environ.get('RAY_AUTH_TOKEN_PATH') or Path.home() / '.ray' / 'auth_token'}"
    return f"it asks for a token: paste {where} (or the output of `.venv/bin/ray get-auth-token`)"


def _wait(what: str, check, timeout: float, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not become healthy in {timeout:.0f} s\n{tail}")


def supervise(cfg: StackConfig) -> None:
    """Runs the stack in the foreground until SIGTERM/SIGINT, then stops it all."""
    import ray  # seconds to import (BENCHMARKS.md, "Import times"): only the supervisor pays it, not `unilseg --help`

    from common.ray_runtime import start_local_ray

    state = Path(cfg.state_dir)
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stack_env(cfg)}
    os.environ.update(stack_env(cfg))
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_, exit_code: int = 0):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for p in reversed(children):
            if p.poll() is None:
                p.terminate()
        for p in children:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if ray.is_initialized():
            ray.shutdown()  # the driver that started the local cluster stops all its processes
        (state / "stack.json").unlink(missing_ok=True)
        sys.exit(exit_code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:  # a failed start-up must not leave the already started children behind
        prefect_log = open(logs / "prefect-server.log", "ab")
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(cfg.prefect_port),
                ],
                env=env,
                stdout=prefect_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
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
        _wait("Prefect server", lambda: http_ok(cfg.api_url + "/health"), 90, logs / "prefect-server.log")
        serve_log = open(logs / "serve.log", "ab")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "flows.serve"],
                env=env,
                cwd=ROOT,
                stdout=serve_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        info = {
            "supervisor": os.getpid(),
            "children": [p.pid for p in children],
            "ray_address": gcs,
            "config": asdict(cfg),
            "dashboard": cfg.dashboard_url,
            "ui": cfg.api_url[:-4],
        }
        storage.write_bytes(state / "stack.json", json.dumps(info, indent=1).encode())  # whole or absent: up() polls it
    except Exception:
        traceback.print_exc()
        stop(exit_code=1)
    while True:
        for p in children:
            if p.poll() is not None:
                print(f"stack: child {p.args} exited with {p.returncode}; stopping", file=sys.stderr)
                stop()
        time.sleep(2)


def up(cfg: StackConfig, timeout: float = 180) -> dict:
    """Starts the supervisor in the background and waits until the deployments are served."""
    state = Path(cfg.state_dir)
    info_path = state / "stack.json"
    if info_path.exists() and alive((info := json.loads(info_path.read_text()))["supervisor"]):
        print("stack already running")
        return info
    for field, what in (("prefect_port", "the Prefect server"), ("dashboard_port", "the Ray dashboard")):
        if port_taken(port := getattr(cfg, field)):
            raise UniLSegError(
                f"port {port} on 127.0.0.1 is in use: set {StackConfig._ENV[field]} to a free port for {what}"
            )
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log = open(state / "logs" / "stack.log", "ab")
    sup = subprocess.Popen(
        [sys.executable, "-m", "cli", "stack", "supervise"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **stack_env(cfg), **cfg.to_env()},
    )

    def started() -> bool:
        if sup.poll() is not None:
            raise RuntimeError(
                f"stack supervisor exited with {sup.returncode}:\n" + (state / "logs" / "stack.log").read_text()[-3000:]
            )
        return info_path.exists()

    _wait("stack", started, timeout, state / "logs" / "stack.log")
    info = json.loads(info_path.read_text())
    write_env_file(cfg, info["ray_address"])
    _wait("served deployments", lambda: _deployments_served(cfg), timeout, state / "logs" / "serve.log")
    return info


def _deployments_served(cfg: StackConfig) -> bool:
    env = {**os.environ, **stack_env(cfg)}
    out = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "ls"], env=env, capture_output=True, text=True, check=False
    ).stdout
    return "annotate-and-train" in out


def down(cfg: StackConfig, timeout: float = 60) -> None:
    """Stops the supervisor (which stops the Prefect server, the serve process and Ray)."""
    info_path = Path(cfg.state_dir) / "stack.json"
    for path in remove_env_files(cfg):
        print(f"removed {path}")
    if not info_path.exists():
        print("stack is not running")
        return
    info = json.loads(info_path.read_text())
    pid = info["supervisor"]
    tree = descendants(pid)
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while alive(pid) and time.time() < deadline:
            time.sleep(0.5)
    # Everything the supervisor started (Prefect, Ray's processes and their helpers, flow
    # runs) is in its process tree: whatever outlived the orderly stop is killed.
    leftovers = [p for p in [pid, *tree] if alive(p)]
    for p in leftovers:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.time() + 10
    while any(alive(p) for p in leftovers) and time.time() < deadline:
        time.sleep(0.2)
    info_path.unlink(missing_ok=True)
    print("stack stopped")


def headline(run_dir: Path) -> str:
    """The demo's figures in a few lines: each evaluated split's mIoU and oIoU under both text
    protocols, and the training behind them (steps, seconds), from the files the run wrote."""
    from unilseg.train_progress import read_metrics

    reports = [e for e in read_metrics(run_dir / "train") if e.get("event") == "report"]
    lines = []
    if reports:
        last = reports[-1]
        lines.append(f"Trained {last['step']} steps in {last['train_seconds'] / 60:.1f} min of training.")
    for path in sorted((run_dir / "eval").glob("*/metrics.json")):
        doc = json.loads(path.read_text())
        run = doc["run"]
        protocols = [("every text (RefCOCO's protocol)", doc["metrics"])] if run["texts"] == "all" else []
        protocols.append(("first text of each target", doc.get("first_text") or doc["metrics"]))
        for task, m in doc["metrics"].items():
            if "mIoU" not in m:
                continue
            lines.append(f"{run['dataset']}/{run['split']} ({task}):")
            lines += [
                f"  {name:<33} mIoU {ms[task]['mIoU']:.3f}  oIoU {ms[task]['oIoU']:.3f}  "
                f"({int(ms[task]['n'])} expressions)"
                for name, ms in protocols
                if task in ms
            ]
    return "\n".join(lines) if lines else f"(no training or evaluation results under {run_dir})"


def demo(cfg: StackConfig, deployment: str = "annotate-and-train/demo", timeout: int = 3600) -> None:
    """`make demo`: start the stack, run the demo deployment through the Prefect CLI as a user
    would, wait for it, print where everything is. The stack keeps running."""
    from flows.config import PipelineConfig
    from flows.pipeline import DEMO_CONFIG

    steps = PipelineConfig.from_yaml(ROOT / DEMO_CONFIG).train.steps
    print(
        f"The demo takes about 6 minutes on an idle 2-core machine, longer on a busy one: its model trains a "
        f"fixed {steps} steps, so the result is the same anywhere.",
        flush=True,
    )
    info = up(cfg)
    print(
        f"Prefect UI:     {info['ui']}\nRay dashboard:  {info['dashboard']}  ({dashboard_sign_in()})\n"
        f"Progress:       the flow run in the UI, or `tail -f {Path(cfg.state_dir) / 'logs' / 'serve.log'}`",
        flush=True,
    )
    env = {**os.environ, **stack_env(cfg), "UNILSEG_RAY_ADDRESS": info["ray_address"]}
    run = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", deployment, "--watch", "--watch-timeout", str(timeout)],
        env=env,
        cwd=ROOT,
        check=False,
    )
    if run.returncode != 0:
        sys.exit(
            f"demo run failed (exit {run.returncode}); logs: Prefect UI above, "
            f"{Path(cfg.state_dir) / 'logs' / 'serve.log'}"
        )
    print(f"""
Demo finished.
{headline(ROOT / "runs" / "demo")}
Results:
  run directory   {ROOT / "runs" / "demo"}  (checkpoints, eval/<dataset>/report.md, previews/)
  datasets        {ROOT / "data"}
  Prefect UI      {info["ui"]}  (flow runs, artifacts: counts, evaluation tables, file paths)
  Ray dashboard   {info["dashboard"]}  ({dashboard_sign_in()}); Jobs lists this run by its flow run's name
The stack keeps running: `set -a; . {cfg.env_path}; set +a; . .venv/bin/activate` in another shell,
then `prefect deployment run {deployment}`. Stop everything with `make down`.""")


@click.group("stack")
def command() -> None:
    """The local stack behind `make demo`: Prefect server, Ray with its dashboard, served deployments."""


@command.command("up")
def up_cmd() -> None:
    """Start the stack in the background; wait until healthy; write .state/stack.env."""
    info = up(StackConfig.from_env())
    click.echo(
        f"Prefect UI:     {info['ui']}\nRay dashboard:  {info['dashboard']}  ({dashboard_sign_in()})\n"
        f"Ray address:    {info['ray_address']}"
    )


@command.command("down")
def down_cmd() -> None:
    """Stop every process `up` started."""
    down(StackConfig.from_env())


@command.command("demo")
def demo_cmd() -> None:
    """Start the stack, run annotate-and-train/demo through the Prefect CLI, print where results are."""
    demo(StackConfig.from_env())


@command.command("status")
def status_cmd() -> None:
    """What runs, with its pids and addresses."""
    path = Path(StackConfig.from_env().state_dir) / "stack.json"
    click.echo(path.read_text() if path.exists() else "stack is not running")


@command.command("supervise", hidden=True)
def supervise_cmd() -> None:
    """The supervisor process itself (started by `up`)."""
    supervise(StackConfig.from_env())
