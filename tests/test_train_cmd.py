"""`unilseg train`: options reach TrainConfig; a finished run is a no-op; bad input is a clear error;
what a person sees of a run, and what a killed run leaves behind."""

import json
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from cli import main
from unilseg.checkpoint import save_checkpoint
from unilseg.model import build_model


def test_finished_run_returns_at_once(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "latest.pt", build_model("unilseg-tiny"), torch.optim.AdamW([torch.zeros(1)]), step=5)
    res = CliRunner().invoke(main, ["train", "--data", f"{tmp_path}/nowhere:2", "--out", str(run), "--steps", "5"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("step 5: ") and str(run / "latest.pt") in res.output


def test_bad_arguments(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--data", "x:-1", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "weight must be > 0" in res.output
    res = runner.invoke(main, ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "not a shard split" in res.output
    res = runner.invoke(
        main, ["train", "--data", "x", "--out", str(tmp_path / "r"), "--workers", "2", "--batch-size", "3"]
    )
    assert res.exit_code != 0 and "multiple of workers" in res.output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from shards.converters.convert import convert
    from shards.synth import generate_shapes

    root = tmp_path_factory.mktemp("synth")
    generate_shapes(root / "src", images=24, seed=1, size=64)
    convert("refcoco", root / "src", root / "out", "train", max_count=4, progress=False)
    return root / "out" / "train"


def _reports(run):
    path = run / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if '"report"' in l] if path.exists() else []


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_killed_run_leaves_no_worker_and_the_rerun_prints_each_logged_step_once(synth, tmp_path):
    """`unilseg train` killed with SIGKILL: its Ray Train workers stop within seconds and write
    nothing more; the same command run again resumes and prints one line per logged step (and
    little else: at most ~15 lines for 10 steps on 2 workers), none twice."""
    from unilseg.run_lock import WORKERS_LOCK, lock_holders

    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "train",
        "--preset",
        "unilseg-tiny",
        "--data",
        str(synth),
        "--out",
        str(run),
        "--workers",
        "2",
        "--batch-size",
        "4",
        "--log-every",
        "2",
        "--checkpoint-every",
        "2",
        "--shuffle-buffer",
        "8",
    ]
    first = subprocess.Popen(cmd + ["--steps", "40"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while not (run / "latest.pt").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run / "latest.pt").exists(), "no checkpoint before the kill"
    first.kill()
    first.wait()
    deadline = time.monotonic() + 30
    while lock_holders(run / WORKERS_LOCK) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lock_holders(run / WORKERS_LOCK) == [], "workers outlived their driver"
    # a step the workers were finishing when the driver died may land before they go; after
    # they are gone nothing of the run may write again
    killed_at = ((run / "latest.pt").stat().st_mtime_ns, len(_reports(run)))
    time.sleep(2)
    assert ((run / "latest.pt").stat().st_mtime_ns, len(_reports(run))) == killed_at, "written after the kill"

    again = subprocess.run(cmd + ["--steps", "10"], capture_output=True, text=True, timeout=900)
    lines = again.stdout.splitlines() + again.stderr.splitlines()
    assert again.returncode == 0, "\n".join(lines)
    assert len(lines) <= 15 and len(set(lines)) == len(lines), "\n".join(lines)
    assert not any("Token authentication" in l or "TrainController" in l for l in lines)  # Ray's notices: --verbose
    assert lines[0].startswith("resuming at step ") and "step 10/10  loss " in "\n".join(lines)
    assert lines[-1].startswith(f"step 10: {run / 'latest.pt'} (") and f"loss curve {run / 'loss.png'}" in lines[-1]
    assert (run / "loss.png").stat().st_size > 0


def test_verbose_turns_on_rays_own_output(tmp_path, monkeypatch):
    import logging

    from common.ray_runtime import VERBOSE_ENV, verbose

    monkeypatch.setenv(VERBOSE_ENV, "0")  # restored (unset) after the test
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    assert not verbose()
    try:
        res = CliRunner().invoke(main, ["train", "--verbose", "--data", "x:-1", "--out", str(tmp_path / "r")])
        assert res.exit_code != 0 and "weight must be > 0" in res.output  # the option is taken; still one line
        assert verbose() and root.level == logging.DEBUG
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
