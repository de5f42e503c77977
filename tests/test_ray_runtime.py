"""unilseg/ray_runtime.py: the one way to reach Ray; each driver's job carries a name the
dashboard's Jobs page shows (it showed "-" for every job of ours)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flows.paths import PROJECT_ROOT

_JOBS = """
import json, sys
import ray
from unilseg.ray_runtime import ensure_ray
ensure_ray(num_cpus=1, job_name=sys.argv[1] or None)
jobs = ray._private.worker.global_worker.gcs_client.get_all_job_info()
print(json.dumps([dict(j.config.metadata) for j in jobs.values()]))
"""


@pytest.mark.parametrize("given,env,expected", [
    ("annotate-and-train/demo: flow run brave-fox", None, "annotate-and-train/demo: flow run brave-fox"),
    ("", "unilseg train", "unilseg train"),  # what the command line sets
    ("", None, "unilseg"),
])
def test_the_dashboard_shows_each_job_by_name(given, env, expected):
    environ = {k: v for k, v in os.environ.items() if k not in ("UNILSEG_RAY_JOB_NAME", "UNILSEG_RAY_ADDRESS")}
    if env:
        environ["UNILSEG_RAY_JOB_NAME"] = env
    out = subprocess.run([sys.executable, "-c", _JOBS, given], env=environ, cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [{"job_name": expected}]


def test_the_command_line_names_the_job_after_the_command(monkeypatch):
    from click.testing import CliRunner

    import cli

    monkeypatch.setenv("UNILSEG_RAY_JOB_NAME", "before")  # restored (removed) after the test
    CliRunner().invoke(cli.main, ["shards", "stats", "/nonexistent"])
    assert os.environ["UNILSEG_RAY_JOB_NAME"] == "unilseg shards"
