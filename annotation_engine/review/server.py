"""A local Label Studio server: the one way the stack and the tests start one.

Label Studio cannot share a venv with Prefect (pinned python-json-logger and redis): the
Makefile builds it a venv of its own (``make label-studio``: ``.venv-ls``, ~1 GB); this
project talks to it through label-studio-sdk only. Started offline, with no prompt, bound to
127.0.0.1 (``--internal-host``; without it Label Studio listens on every interface), its data
in a folder of its own. The first start migrates its database (a minute or more on a busy
2-core machine); ``prepare_template`` does that once per venv and later servers start from a
copy of that migrated folder (~7 s). The API key is a token we choose: the user is created at
the first start with ``LABEL_STUDIO_USER_TOKEN`` (honoured with ``--enable-legacy-api-token``).

    python -m annotation_engine.review.server template   # migrate the template once (the tests' fixture)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import UniLSegError
from common.processes import die_with_parent, http_ok

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_ENV = "UNILSEG_LABEL_STUDIO_VENV"
USERNAME = "reviewer@unilseg.local"
TEMPLATE = "template-data"  # the migrated data folder, inside the venv (rebuilt with it)
TEMPLATE_TOKEN = "5f1c0ffee0unilseg0template0token0000000"  # the template's user; tests only


def venv_dir() -> Path:
    """The Label Studio venv: UNILSEG_LABEL_STUDIO_VENV, else .venv-ls in the checkout."""
    return Path(os.environ.get(VENV_ENV) or REPO_ROOT / ".venv-ls")


def executable(venv: Path | None = None) -> Path:
    """The ``label-studio`` program of the venv.

    Raises:
        UniLSegError: the venv is not built.
    """
    exe = (venv or venv_dir()) / "bin" / "label-studio"
    if not exe.exists():
        raise UniLSegError(f"Label Studio is not installed at {exe.parent.parent}: run `make label-studio`")
    return exe


@dataclass
class LabelStudioServer:
    """One server process.

    Attributes:
        data_dir (Path): its database, media and logs.
        port (int): its port on 127.0.0.1.
        token (str): the API key (the first start creates the user with it).
        files_root (Path): the document root of its local-files storage.
        password (str): the web login's password (user ``reviewer@unilseg.local``).
        venv (Path | None): the Label Studio venv (default: venv_dir()).
    """

    data_dir: Path
    port: int
    token: str
    files_root: Path
    password: str = "unilseg-review"
    venv: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The server's environment: offline, no prompt, no analytics or error reports, local files served."""
        env = {k: v for k, v in os.environ.items() if k not in ("USERNAME", "PASSWORD", "PORT", "HOST")}
        return {
            **env,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_USERNAME": USERNAME,
            "LABEL_STUDIO_PASSWORD": self.password,
            "LABEL_STUDIO_USER_TOKEN": self.token,
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.files_root),
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            # its error reports go to Sentry by default (server and browser): offline and private
            "LABEL_STUDIO_SENTRY_DSN": "",
            "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        }

    def command(self) -> list[str]:
        return [
            str(executable(self.venv)),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--enable-legacy-api-token",
        ]

    def start(self, log: Path | None = None, die_with_us: bool = True) -> LabelStudioServer:
        """Starts the process (does not wait: see ``wait``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(log or self.data_dir / "label-studio.log", "ab")
        self.process = subprocess.Popen(
            self.command(),
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if die_with_us else None,
        )
        return self

    def wait(self, timeout: float = 300) -> None:
        """Waits until the server answers its health check.

        Raises:
            UniLSegError: it exited or did not answer in time (the log's tail is in the message).
        """
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise UniLSegError(f"Label Studio exited with {self.process.returncode}: {self._tail()}")
            if http_ok(self.url + "/health"):
                return
            time.sleep(1)
        raise UniLSegError(f"Label Studio did not answer at {self.url} in {timeout:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        log = self.data_dir / "label-studio.log"
        return " ".join(log.read_text(errors="replace")[-600:].split()) if log.exists() else "(no log)"

    def stop(self, timeout: float = 20) -> None:
        """Stops the server and what it started (its own session)."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def prepare_template(venv: Path | None = None, timeout: float = 600) -> Path:
    """The migrated data folder of the venv (made once: a first start, then a stop); returns it."""
    import fcntl

    venv = venv or venv_dir()
    template = venv / TEMPLATE
    if (template / ".ready").exists():
        return template
    with open(venv / (TEMPLATE + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second test session waits for the first's migration
        if not (template / ".ready").exists():
            _migrate(venv, template, timeout)
    return template


def _migrate(venv: Path, template: Path, timeout: float) -> None:
    from common.processes import free_port

    work = venv / (TEMPLATE + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    server = LabelStudioServer(work, free_port(), TEMPLATE_TOKEN, work / "files", venv=venv).start()
    try:
        server.wait(timeout)
    finally:
        server.stop()
    (work / "label-studio.log").unlink(missing_ok=True)
    (work / ".ready").touch()
    shutil.rmtree(template, ignore_errors=True)
    os.replace(work, template)


def from_template(data_dir: Path, port: int, files_root: Path, venv: Path | None = None) -> LabelStudioServer:
    """A server on a copy of the template (no migration; its API key is TEMPLATE_TOKEN)."""
    template = prepare_template(venv)
    shutil.copytree(template, data_dir, ignore=shutil.ignore_patterns(".ready"))
    return LabelStudioServer(data_dir, port, TEMPLATE_TOKEN, files_root, venv=venv)


if __name__ == "__main__":
    if sys.argv[1:] == ["template"]:
        print(prepare_template())
    else:
        sys.exit("usage: python -m annotation_engine.review.server template")
