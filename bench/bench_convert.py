"""Synthetic referring set: generation + conversion time per 1k images, and memory as it grows.

    .venv/bin/python bench/bench_convert.py [--images 1000 10000] [--size 128] [--keep DIR]

For each count N, two child processes run one after the other, so each peak RSS is its
own: (1) ``generate_shapes`` writes N images in refer's layout; (2) the ``refcoco``
converter turns every split (train, val, testA, testB) into shards, as
``unilseg convert refcoco`` does. Each child reports wall time and peak RSS
(``resource.getrusage``). Flat memory means the 10k peaks stay close to the 1k peaks:
images and masks never accumulate, the refs pickle is streamed keeping only the split's
compact refs, and instances.json is streamed (ijson) keeping the split's image records
while its annotations wait in a temporary file; what still grows is only those compact
per-split records (a few hundred bytes per ref and image).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT
SPLITS = ("train", "val", "testA", "testB")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child_generate(n: int, src: Path, size: int) -> dict:
    from shards.synth import generate_shapes

    t = time.perf_counter()
    counts = generate_shapes(src, images=n, seed=0, size=size)
    return {
        "seconds": time.perf_counter() - t,
        "peak_rss_mb": _peak_rss_mb(),
        "refs": counts["refs"],
        "sentences": counts["sentences"],
        "annotations": counts["annotations"],
    }


def child_convert(src: Path, out: Path) -> dict:
    import logging

    from shards.converters.convert import convert

    logging.disable(logging.WARNING)
    t = time.perf_counter()
    samples = targets = quarantined = 0
    for split in SPLITS:
        summary = convert("refcoco", src, out, split, progress=False)
        samples += summary["counts"]["samples"]
        targets += summary["counts"]["targets"]
        quarantined += summary["quarantined"]
    return {
        "seconds": time.perf_counter() - t,
        "peak_rss_mb": _peak_rss_mb(),
        "samples": samples,
        "targets": targets,
        "quarantined": quarantined,
        "shard_mb": sum(p.stat().st_size for p in out.rglob("*.tar")) / 2**20,
    }


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[1000, 10000], help="image counts to measure")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--keep", type=Path, help="write under this folder and keep the output")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, *rest = args.child
        result = (
            child_generate(int(rest[0]), Path(rest[1]), args.size)
            if mode == "generate"
            else child_convert(Path(rest[0]), Path(rest[1]))
        )
        print(json.dumps(result))
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    rows = []
    try:
        for n in args.images:
            src, out = base / f"shapes_{n}", base / f"shards_{n}"
            for d in (src, out):
                shutil.rmtree(d, ignore_errors=True)
            gen = _run_child("--child", "generate", str(n), str(src), "--size", str(args.size))
            conv = _run_child("--child", "convert", str(src), str(out))
            rows.append((n, gen, conv))
            print(
                f"{n:>6} images: generate {gen['seconds']:6.1f} s ({gen['seconds'] / n * 1000:5.2f} s/1k), "
                f"peak RSS {gen['peak_rss_mb']:6.0f} MB | convert {conv['seconds']:6.1f} s "
                f"({conv['seconds'] / n * 1000:5.2f} s/1k), peak RSS {conv['peak_rss_mb']:6.0f} MB | "
                f"{conv['samples']} samples, {conv['targets']} targets, {conv['quarantined']} quarantined, "
                f"{conv['shard_mb']:.0f} MB of shards",
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if len(rows) > 1:
        (n0, g0, c0), (n1, g1, c1) = rows[0], rows[-1]
        print(
            f"peak RSS growth {n0} -> {n1} images: generate x{g1['peak_rss_mb'] / g0['peak_rss_mb']:.2f}, "
            f"convert x{c1['peak_rss_mb'] / c0['peak_rss_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
