"""Chaos check: resume training from object storage many times in a row (issue 21).

    .venv/bin/python bench/chaos_resume.py [--resumes 20] [--workers 2]

A moto S3 server (its own process on 127.0.0.1) stands in for S3. The command line runs as a
user would run it (a subprocess, its own local Ray): `unilseg train --out s3://.../run
--workers 2 --steps 8` on a small synthetic split, then the same command with --steps 9, 10,
... : every resume starts a new worker group whose ranks all restore Ray Train's checkpoint
from the bucket on one node, the situation of ray-project/ray#48726 (a late rank
downloading again over a file the first is reading). Prints one line per resume (exit code,
seconds, the step the run restored from and reached) and a last JSON line with the count of
failures; exits 1 if any resume failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_storage import start_moto  # a moto server in its own process; sets AWS_* for us and our children

from shards import storage
from shards.converters.convert import convert
from shards.synth import generate_shapes
from unilseg.train_worker import METRICS


def train(data: Path, run: str, steps: int, workers: int) -> tuple[int, float, str]:
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "train",
        "--data",
        str(data),
        "--out",
        run,
        "--preset",
        "unilseg-tiny",
        "--workers",
        str(workers),
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--checkpoint-every",
        "4",
        "--log-every",
        "4",
        "--loader-workers",
        "0",
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, time.perf_counter() - t, (proc.stdout + proc.stderr).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resumes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    moto = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["UNILSEG_CACHE_DIR"] = str(Path(tmp) / "cache")  # a fresh cache: every version fetched
            generate_shapes(Path(tmp) / "src", images=24, seed=1, size=64)
            convert("refcoco", Path(tmp) / "src", Path(tmp) / "data", "train", max_count=4, progress=False)
            import s3fs

            s3fs.S3FileSystem().mkdir("chaos")
            run = "s3://chaos/runs/resume"
            code, seconds, out = train(Path(tmp) / "data" / "train", run, 8, args.workers)
            print(f"first run to step 8: exit {code}, {seconds:.1f} s", flush=True)
            if code:
                raise SystemExit(out)
            failures = []
            for i in range(args.resumes):
                steps = 9 + i
                code, seconds, out = train(Path(tmp) / "data" / "train", run, steps, args.workers)
                starts = [
                    json.loads(line)
                    for line in storage.read_bytes(storage.join(run, METRICS)).decode().splitlines()
                    if '"start"' in line
                ]
                restored = starts[-1]["step"] if starts else None
                print(
                    f"resume {i + 1}/{args.resumes}: --steps {steps}: exit {code}, {seconds:.1f} s, "
                    f"restored from step {restored} ({starts[-1].get('from') if starts else '-'})",
                    flush=True,
                )
                if code:
                    failures.append({"resume": i + 1, "output": out[-2000:]})
                    print(out[-2000:], flush=True)
            print(json.dumps({"resumes": args.resumes, "workers": args.workers, "failures": len(failures)}))
            if failures:
                sys.exit(1)
    finally:
        moto.kill()


if __name__ == "__main__":
    main()
