"""A real Label Studio server for a test module, from the venv the Makefile builds.

    from label_studio_fixtures import label_studio  # noqa: F401 (a fixture)

    @pytest.mark.slow
    def test_x(label_studio):  # a LabelStudioServer: .url, .token, .files_root (its document root)
        ...

One server per module (a free port on 127.0.0.1, its own data folder under tmp, stopped
afterwards), started from a copy of the venv's migrated template (~10 s instead of the first
start's migration, 1-1.5 min). ``make label-studio`` builds the venv; when the selected tests
use this fixture, conftest starts building the venv and its template in the background as the
session starts (``start_background_build``), so that the suite's other tests overlap it. If the
venv cannot be built the tests are skipped with the reason, except under CI (CI=true), where
they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotation_engine.review import server as ls_server

_BUILD_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "unilseg-label-studio-build.log"
_build: subprocess.Popen | None = None


def start_background_build() -> None:
    """Starts `make label-studio` and the template's migration in the background (once)."""
    global _build
    venv = ls_server.venv_dir()
    if _build is not None or (venv / ls_server.TEMPLATE / ".ready").exists():
        return
    make = f"make -s -C {ls_server.REPO_ROOT} label-studio LS_VENV={venv}"
    script = f"{make} && {sys.executable} -m {ls_server.__name__} template"
    lock = f"{venv}.build.lock"  # pytest-xdist: every worker asks; one builds, the others wait
    log = _BUILD_LOG.with_suffix(f".{os.getpid()}.log")
    _build = subprocess.Popen(
        ["flock", lock, "bash", "-c", script], stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for_build(timeout: float = 1200) -> str | None:
    """None once the venv and its template are ready, else why not."""
    start_background_build()
    if _build is not None:
        try:
            _build.wait(timeout)
        except subprocess.TimeoutExpired:
            return f"building Label Studio took over {timeout:.0f} s (log: {_BUILD_LOG})"
        if _build.returncode != 0:
            log = _BUILD_LOG.with_suffix(f".{os.getpid()}.log")
            return f"`make label-studio` or the template failed ({log}): {log.read_text()[-800:]}"
    return None


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from common.processes import free_port

    problem = _wait_for_build()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    root = tmp_path_factory.mktemp("label-studio")
    files = root / "files"
    files.mkdir()
    server = ls_server.from_template(root / "data", free_port(), files).start()
    try:
        server.wait(180)
        yield server
    finally:
        server.stop()
