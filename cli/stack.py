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

Its settings and environment are in `stack_config.py`; the supervisor process in
`stack_supervisor.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from cli.stack_config import ROOT, StackConfig, label_studio_env, label_studio_server, stack_env
from cli.stack_supervisor import supervise, wait_healthy
from common.errors import UniLSegError
from common.processes import alive, descendants, port_taken
from shards import storage

ENV_FILE_HEADER = "# written by `unilseg stack up`"
LEGACY_ENV_FILE = ROOT / ".env"  # where stacks before Dec 2026 wrote it (see the module docstring)


def write_env_file(cfg: StackConfig, ray_address: str) -> None:
    """Writes the env file so that `set -a; . .state/stack.env; set +a` prepares another shell."""
    path = cfg.env_path
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**stack_env(cfg), "UNILSEG_RAY_ADDRESS": ray_address}
    if label_studio_installed():
        env.update(label_studio_env(cfg))  # the SDK's own variables: `unilseg review` finds the server
    lines = [f"{k}={v}" for k, v in env.items()]
    storage.write_bytes(path, (ENV_FILE_HEADER + "\n" + "\n".join(lines) + "\n").encode())


def label_studio_installed() -> bool:
    from annotation_engine.review.server import venv_dir

    return (venv_dir() / "bin" / "label-studio").exists()


def wait_label_studio(cfg: StackConfig, timeout: float = 600) -> dict[str, str]:
    """Starts the stack if it does not run, waits until its Label Studio answers (its first
    start migrates a database: a minute or more); returns the environment that reaches it."""
    from common.processes import http_ok

    if not label_studio_installed():
        raise UniLSegError("Label Studio is not installed: run `make label-studio`")
    up(cfg)
    if "LABEL_STUDIO_URL=" not in cfg.env_path.read_text():  # `make demo` starts the stack without it
        print("the stack started before Label Studio was installed: restarting it with Label Studio (results stay)")
        down(cfg)
        up(cfg)
    server = label_studio_server(cfg)
    print(f"waiting for Label Studio at {server.url} (its first start prepares a database: a minute or more)")
    log = Path(cfg.state_dir) / "logs" / "label-studio.log"
    wait_healthy("Label Studio", lambda: http_ok(server.url + "/health"), timeout, log)
    return label_studio_env(cfg)


def label_studio_hint(cfg: StackConfig) -> str:
    server = label_studio_server(cfg)
    pw = Path(cfg.state_dir) / "label-studio" / "password"
    return (
        f"{server.url}  (log in as reviewer@unilseg.local, password in {pw}; ready after its first start's migration)"
    )


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


def up(cfg: StackConfig, timeout: float = 180) -> dict:
    """Starts the supervisor in the background and waits until the deployments are served."""
    state = Path(cfg.state_dir)
    info_path = state / "stack.json"
    if info_path.exists() and alive((info := json.loads(info_path.read_text()))["supervisor"]):
        print("stack already running")
        return info
    for field, what in (
        ("prefect_port", "the Prefect server"),
        ("dashboard_port", "the Ray dashboard"),
        *([("label_studio_port", "Label Studio")] if label_studio_installed() else []),
    ):
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

    wait_healthy("stack", started, timeout, state / "logs" / "stack.log")
    info = json.loads(info_path.read_text())
    write_env_file(cfg, info["ray_address"])
    wait_healthy("served deployments", lambda: _deployments_served(cfg), timeout, state / "logs" / "serve.log")
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
    from unilseg.train_worker import read_metrics  # torch: imported only once the run is done

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
    lines += _engine_headline(run_dir)
    return "\n".join(lines) if lines else f"(no training or evaluation results under {run_dir})"


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"  # metrics.json writes an undefined figure as null


def _engine_headline(run_dir: Path) -> list[str]:
    """The engine evaluation's figures (annotation_engine.quality), when the run scored its engine."""
    lines = []
    for path in sorted((run_dir / "engine-eval").glob("*/metrics.json")):
        doc = json.loads(path.read_text())
        m, run, ex = doc["masks"], doc["run"], doc["expressions"]
        lines.append(f"The {run['engine_name']} engine on {run['dataset']}/{run['split']} ({m['n_images']} images):")
        lines.append(
            f"  masks: AR@100 {_f(m['AR@100'])}, recall@0.5 {_f(m['recall@0.5'])}, "
            f"precision@0.5 {_f(m['precision@0.5'])}"
        )
        if ex.get("method") == "grounding":
            g, r = ex["generated"], ex["reference"]
            lines.append(
                f"  expressions read back by the model: {_f(g['hit_rate@0.5'])} of the engine's hit their mask "
                f"({_f(r['hit_rate@0.5'])} of the ground truth's)"
            )
    return lines


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
  run directory   {ROOT / "runs" / "demo"}  (checkpoints, eval/ and engine-eval/<dataset>/report.md, previews/)
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
    cfg = StackConfig.from_env()
    info = up(cfg)
    click.echo(
        f"Prefect UI:     {info['ui']}\nRay dashboard:  {info['dashboard']}  ({dashboard_sign_in()})\n"
        f"Ray address:    {info['ray_address']}"
    )
    if label_studio_installed():
        click.echo(f"Label Studio:   {label_studio_hint(cfg)}")


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
