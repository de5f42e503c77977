"""Bookkeeping at scale (issue 25): a whole annotation run over N generated images with a null
engine, measuring the memory of the driver and of every ledger partition, wall time, the commit
and the source index.

    .venv/bin/python bench/bench_scale.py --images 100000            # a first run
    .venv/bin/python bench/bench_scale.py --images 100000 --rerun    # then a re-run over it

The input is ``synthimg://n<N>`` (bench/synth_fs.py): a generated bucket listed like an object
store (50,000 images per top-level prefix: the listing partitions; 1,000 per page), whose
files are tiny distinct PNGs made on request. The engine is null (one fixed target per image,
no decoding); everything else is the pipeline's own code: listing tasks, source index look-ups,
reads and hashes, claims, the engine actor's begin/end, the shard writers, the commit.
``--ledgers`` defaults to one ledger partition per ``--images-per-ledger`` (1,000,000).

The last line is one JSON object: images, ledgers, wall_s, driver_peak_mb, ledger_peak_mb,
largest_process_peak_mb (the driver and every ledger partition), images_read, written, skipped, commit_s, manifest_mb,
dataset_json_kb, index_files, index_mb, index_files_written.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402

import annotation_engine.driver as driver  # noqa: E402
import annotation_engine.sink as sink  # noqa: E402
from bench import synth_fs  # noqa: E402

ENGINE = {"base": "weightfree", "max_side": 32, "resources": {"num_cpus": 1, "batch_size": 256}}


def _instrument(captured: dict[str, Any]) -> None:
    """Times every commit, and keeps the ledger partitions' stats before the driver kills them."""
    commit = sink.commit_split

    def timed_commit(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return commit(*a, **k)
        finally:
            captured["commit_s"] = captured.get("commit_s", 0.0) + time.perf_counter() - t0
            captured["commits"] = captured.get("commits", 0) + 1

    sink.commit_split = driver.commit_split = timed_commit
    run_pipeline = driver._run_pipeline

    def run(ds: Any, snk: Any, ledger: Any, *a: Any, **k: Any) -> Any:
        try:
            return run_pipeline(ds, snk, ledger, *a, **k)
        finally:
            captured["ledgers"] = ledger.stats()

    driver._run_pipeline = run


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    captured: dict[str, Any] = {}
    _instrument(captured)
    t0 = time.perf_counter()
    res = driver.annotate_images(
        f"{synth_fs.PROTOCOL}://n{args.images}",
        str(out),
        engine=ENGINE,
        actors=args.actors,
        ledgers=args.ledgers,
        max_count=args.max_count,
        progress=False,
    )
    wall = time.perf_counter() - t0
    split = out / "train"
    ledgers = captured.get("ledgers", [])
    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    ledger_mb = max((s["peak_mb"] for s in ledgers), default=0.0)
    counts = res["stats"]["counts"]
    return {
        "images": args.images,
        "rerun": args.rerun,
        "ledgers": args.ledgers,
        "wall_s": round(wall, 1),
        "wall_s_per_million": round(wall * 1e6 / args.images, 1),
        "driver_peak_mb": round(driver_mb, 1),
        "ledger_peak_mb": round(ledger_mb, 1),
        "largest_process_peak_mb": round(max(driver_mb, ledger_mb), 1),
        "images_read": counts.get("read", 0),
        "listed": counts.get("listed", 0),
        "written": res["written"],
        "skipped": res["skipped"],
        "commit_s": round(captured.get("commit_s", 0.0), 2),
        "commits": captured.get("commits", 0),
        "manifest_mb": round(_size(split / "manifest.parquet") / 2**20, 2),
        "dataset_json_kb": round(_size(split / "dataset.json") / 1024, 1),
        "shards": res["counts"]["shards"],
        "index_files": len(list((split / "source_index").glob("*.parquet"))),
        "index_mb": round(_size(split / "source_index") / 2**20, 2),
        "index_files_written": sum(s["index_files_written"] for s in ledgers),
        "max_claims_per_ledger": max((s["claims"] for s in ledgers), default=0),
        "max_done_per_ledger": max((s["done"] for s in ledgers), default=0),
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, required=True)
    ap.add_argument("--rerun", action="store_true", help="measure a re-run over an existing first run at --out")
    ap.add_argument("--out", type=Path, help="dataset directory [/tmp/unilseg-bench-scale/n<images>]")
    ap.add_argument("--ledgers", type=int, help="ledger partitions [images / --images-per-ledger, at least 1]")
    ap.add_argument("--images-per-ledger", type=int, default=1_000_000)
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--max-count", type=int, default=1000)
    args = ap.parse_args()
    args.ledgers = args.ledgers or max(1, -(-args.images // args.images_per_ledger))
    out = args.out or Path(f"/tmp/unilseg-bench-scale/n{args.images}")
    if not args.rerun:
        shutil.rmtree(out, ignore_errors=True)
    elif not (out / "train" / "dataset.json").exists():
        raise SystemExit(f"no first run at {out}: run without --rerun first")
    synth_fs.register()
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        namespace="unilseg",
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": "bench.synth_fs.setup_worker"},
    )
    print(json.dumps(_run(args, out)), flush=True)


if __name__ == "__main__":
    main()
