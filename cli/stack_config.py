"""What the local stack is: its state directory and ports (`StackConfig`), the environment
its processes and the user's shells need (`stack_env`), and where Ray keeps its session."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import LOOPBACK_ENV
from flows.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT


@dataclass
class StackConfig:
    """Where and on which ports the local stack runs.

    Attributes:
        state_dir (str): Prefect home, Ray temp dir, logs and pids.
        prefect_port (int): Prefect API/UI port on 127.0.0.1.
        dashboard_port (int): Ray dashboard port on 127.0.0.1.
        num_cpus (int): CPUs Ray may use (0 = all).
        label_studio_port (int): Label Studio's port on 127.0.0.1 (the review loop).
        env_file (str): where `up` writes the environment for other shells (removed by `down`);
            empty: STATE_DIR/stack.env.
    """

    state_dir: str = str(ROOT / ".state")
    prefect_port: int = 4200
    dashboard_port: int = 8265
    num_cpus: int = 0
    label_studio_port: int = 8080
    env_file: str = ""

    # The supervisor runs in its own process: the config travels there as environment.
    _ENV = {
        "state_dir": "UNILSEG_STATE_DIR",
        "prefect_port": "UNILSEG_PREFECT_PORT",
        "dashboard_port": "UNILSEG_DASHBOARD_PORT",
        "num_cpus": "UNILSEG_RAY_CPUS",
        "label_studio_port": "UNILSEG_LABEL_STUDIO_PORT",
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


def _secret(path: Path) -> str:
    """A random secret kept in a file of the state dir (made once, readable by its owner only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(20))
    return path.read_text().strip()


def label_studio_server(cfg: StackConfig):
    """The stack's Label Studio (not started): data in STATE_DIR/label-studio, its API key and
    web password made once in files there, local files served from the project root."""
    from annotation_engine.review.server import LabelStudioServer

    data = Path(cfg.state_dir) / "label-studio"
    token, password = _secret(data / "api-key"), _secret(data / "password")
    return LabelStudioServer(data / "data", cfg.label_studio_port, token, ROOT, password=password)


def label_studio_env(cfg: StackConfig) -> dict[str, str]:
    """What a shell needs to reach the stack's Label Studio (written to stack.env by `up`)."""
    server = label_studio_server(cfg)
    return {
        "LABEL_STUDIO_URL": server.url,
        "LABEL_STUDIO_API_KEY": server.token,
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(server.files_root),
    }
