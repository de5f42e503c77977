"""What a user sees when things go wrong, this tree vs another revision, in the same run (issue 16).

    .venv/bin/python bench/bench_failures.py [--compare 06af1da] [--skip flow]

Each variant runs the command line as a user would (a subprocess, its own local Ray; the
other revision from `git archive REV` in a temp dir, on PYTHONPATH and as the working
directory, since `python -c` puts the working directory first on sys.path):
- damaged: `unilseg train` (2 workers, max_failures 2) on a split whose first shard had 16
  bytes flipped (same size: only reading finds it): wall seconds to the exit, worker-group
  starts (start events in RUN/metrics.jsonl), console lines.
- lines: `unilseg train --workers 2 --steps 10 --log-every 2`: console lines (stdout+stderr)
  and how many of them are repeats.
- kill: `unilseg train --steps 40 --checkpoint-every 2`, SIGKILLed when RUN/latest.pt first
  appears: the seconds its Ray Train workers (found among the driver's descendants before the
  kill) live on, the reports and latest.pt writes made after the kill (watched for 15 s).
- flow: `python -m flows.pipeline` on a small config, SIGKILLed once its Prefect server (a
  uvicorn child running prefect.server.api.server:create_app) answers: the seconds that
  server lives on (watched for --watch seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.paths import PROJECT_ROOT as ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))  # damage_fixtures: the same damage the tests build

from damage_fixtures import flip_bytes  # noqa: E402

from common.processes import cmdline, descendants  # noqa: E402
from shards.converters.convert import convert  # noqa: E402
from shards.synth import generate_shapes  # noqa: E402


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def reports(run: Path) -> int:
    path = run / "metrics.jsonl"
    return sum('"report"' in line for line in path.read_text().splitlines()) if path.exists() else 0


class Variant:
    def __init__(self, name: str, code: Path):
        self.name, self.code = name, code
        self.env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        self.env.pop("PREFECT_API_URL", None)
        self.env.pop("UNILSEG_RAY_ADDRESS", None)

    def train_cmd(self, data: Path, run: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-c",
            "from cli import main; main()",
            "train",
            "--preset",
            "unilseg-tiny",
            "--data",
            str(data),
            "--out",
            str(run),
            "--workers",
            "2",
            "--batch-size",
            "4",
            "--shuffle-buffer",
            "8",
            *extra,
        ]


def damaged(v: Variant, data: Path, tmp: Path) -> dict:
    split = tmp / f"{v.name}-damaged" / "train"
    shutil.copytree(data, split)
    flip_bytes(split)
    run = tmp / f"{v.name}-damaged-run"
    t0 = time.perf_counter()
    res = subprocess.run(
        v.train_cmd(split, run, "--steps", "30", "--log-every", "2"),
        env=v.env,
        cwd=v.code,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - t0
    starts = (
        sum('"start"' in l for l in (run / "metrics.jsonl").read_text().splitlines())
        if (run / "metrics.jsonl").exists()
        else 0
    )
    lines = (res.stdout + res.stderr).splitlines()
    return {
        "exit": res.returncode,
        "wall_s": round(wall, 1),
        "starts": starts,
        "lines": len(lines),
        "last": lines[-1][:100] if lines else "",
    }


def console_lines(v: Variant, data: Path, tmp: Path) -> dict:
    run = tmp / f"{v.name}-lines-run"
    t0 = time.perf_counter()
    res = subprocess.run(
        v.train_cmd(data, run, "--steps", "10", "--log-every", "2"),
        env=v.env,
        cwd=v.code,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
    return {
        "exit": res.returncode,
        "wall_s": round(time.perf_counter() - t0, 1),
        "lines": len(lines),
        "repeated": len(lines) - len(set(lines)),
        "last": lines[-1][:100] if lines else "",
    }


def kill_train(v: Variant, data: Path, tmp: Path, watch: float = 15.0) -> dict:
    run = tmp / f"{v.name}-kill-run"
    p = subprocess.Popen(
        v.train_cmd(data, run, "--steps", "40", "--log-every", "2", "--checkpoint-every", "2"),
        env=v.env,
        cwd=v.code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 1200
    while not (run / "latest.pt").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [c for c in descendants(p.pid) if "RayTrainWorker" in cmdline(c)]  # with their DataLoader processes
    p.send_signal(signal.SIGKILL)
    p.wait()
    t_kill = time.monotonic()
    at_kill = (reports(run), (run / "latest.pt").stat().st_mtime_ns)
    writes, last_alive = 0, 0.0
    while time.monotonic() - t_kill < watch:
        if any(alive(w) for w in workers):
            last_alive = time.monotonic() - t_kill
        mtime = (run / "latest.pt").stat().st_mtime_ns
        if mtime != at_kill[1]:
            writes, at_kill = writes + 1, (at_kill[0], mtime)
        time.sleep(0.05)
    return {
        "workers": len(workers),
        "alive_after_kill_s": round(last_alive, 2),
        "reports_after_kill": reports(run) - at_kill[0],
        "latest_writes_after_kill": writes,
    }


def kill_flow(v: Variant, tmp: Path, watch: float) -> dict:
    cfg = tmp / f"{v.name}-flow.yaml"
    cfg.write_text(
        f"run_name: k\ndata_root: {tmp / (v.name + '-fdata')}\nruns_root: {tmp / (v.name + '-fruns')}\n"
        f"annotate: null\nlabeled:\n  - {{name: s, format: synth-shapes, src: {tmp / (v.name + '-fsrc')}, "
        f"synth_images: 2000}}\n"
    )
    env = {**v.env, "PREFECT_HOME": str(tmp / f"{v.name}-prefect")}
    p = subprocess.Popen(
        [sys.executable, "-m", "flows.pipeline", str(cfg)],
        env=env,
        cwd=v.code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server, deadline = None, time.monotonic() + 600
    while server is None and p.poll() is None and time.monotonic() < deadline:
        server = next((c for c in descendants(p.pid) if "prefect.server.api.server:create_app" in cmdline(c)), None)
        time.sleep(0.2)
    time.sleep(5)  # let it answer and the flow begin
    p.send_signal(signal.SIGKILL)
    p.wait()
    t_kill = time.monotonic()
    while server and alive(server) and time.monotonic() - t_kill < watch:
        time.sleep(0.1)
    alive_s = time.monotonic() - t_kill
    still = bool(server and alive(server))
    if still:
        os.kill(server, signal.SIGKILL)
    return {
        "server_found": server is not None,
        "server_alive_after_kill_s": round(alive_s, 1),
        "still_alive_at_end": still,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare", default="06af1da", help="git revision to compare with")
    ap.add_argument("--skip", nargs="*", default=[], choices=["damaged", "lines", "kill", "flow"])
    ap.add_argument("--watch", type=float, default=60.0, help="seconds to watch a killed flow's server")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-failures-") as d:
        tmp = Path(d)
        base = tmp / "rev"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        generate_shapes(tmp / "src", images=24, seed=1, size=64)
        convert("refcoco", tmp / "src", tmp / "data", "train", max_count=4, progress=False)
        data = tmp / "data" / "train"
        variants = [Variant("ours", ROOT), Variant(args.compare, base)]
        results: dict[str, dict] = {v.name: {} for v in variants}
        for v in variants:
            if "damaged" not in args.skip:
                results[v.name]["damaged"] = damaged(v, data, tmp)
            if "lines" not in args.skip:
                results[v.name]["lines"] = console_lines(v, data, tmp)
            if "kill" not in args.skip:
                results[v.name]["kill"] = kill_train(v, data, tmp)
            if "flow" not in args.skip:
                results[v.name]["flow"] = kill_flow(v, tmp, args.watch)
            print(v.name, json.dumps(results[v.name]), flush=True)
        load = Path("/proc/loadavg").read_text().split()[0]
        print(json.dumps({"load_1min_at_end": load, **results}, indent=1))


if __name__ == "__main__":
    main()
