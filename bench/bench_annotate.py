"""Annotation pipeline throughput: Ray actors + single writer vs a bare in-process loop.

    .venv/bin/python bench/bench_annotate.py [--images 48] [--repeat 2] [--engine weightfree]

The weight-free engine on scikit-image's bundled photos, repeated (each copy slightly
changed, so every file is a distinct image) to --images files. Measured in one process,
interleaved per repeat (the machine is shared and noisy; medians are printed):
- bare: Engine built once, then read + prepare_image + Engine.annotate + ShardWriter in a
  plain loop (1 process, torch/OMP threads 1): the baseline.
- pipeline-1 / pipeline-2: annotate_images with 1 and 2 actors (1 CPU each) on a Ray of 2
  CPUs; the driver lists, hashes, writes. Ratios use the annotate phase (after the actors
  built their engines) and, separately, the wall time including actor start.
- rerun: annotate_images again on the same images (nothing to do) / the first run's wall.
- peak RSS of each actor (MB).
Targets: pipeline-1 / bare >= 0.9, pipeline-2 / pipeline-1 >= 1.6, rerun <= 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from annotation_engine.actor import EngineWorker  # noqa: E402
from annotation_engine.config import load_engine_config  # noqa: E402
from annotation_engine.driver import _record, annotate_images, list_images, read_bytes  # noqa: E402
from shards.images import sha256_bytes  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry", "colorwheel"]


def make_images(folder: Path, n: int) -> list[str]:
    """n distinct JPEGs: the bundled photos, each copy flipped/shifted a little."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        rgb = np.stack([rgb] * 3, -1) if rgb.ndim == 2 else rgb[..., :3]
        copy = i // len(PHOTOS)
        rgb = rgb[:, ::-1] if copy % 2 else rgb
        rgb = rgb[copy // 2:]  # a different crop per pair of copies
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / f"img{i:03d}.jpg", quality=90)
    return list_images(folder)


def bare_loop(paths: list[str], out: Path, engine: str) -> float:
    """The same engine and writer in a plain loop; returns annotate+write seconds (engine built before)."""
    cfg = load_engine_config(engine)
    worker = EngineWorker(cfg.to_dict(), torch_threads=1)
    version, source = worker.version(), f"auto/{cfg.name}"
    counts = {"written": 0, "skipped": 0, "quarantined": 0}
    t0 = time.perf_counter()
    with ShardWriter(out / "train") as writer:
        for p in paths:
            data = read_bytes(p)
            ok, result = worker.annotate_one(data)
            _record(writer, (p, sha256_bytes(data)), ok, result, version, source, counts)
    assert counts["written"] + counts["quarantined"] == len(paths)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--engine", default="weightfree")
    args = ap.parse_args()

    from unilseg.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    paths = make_images(tmp / "images", args.images)
    n = len(paths)
    res: dict[str, list[float]] = {k: [] for k in ("bare", "p1", "p2", "p1_wall", "p2_wall", "rerun")}
    rss: list[float] = []
    for r in range(args.repeat):
        res["bare"].append(bare_loop(paths, tmp / f"bare{r}", args.engine))
        for actors in (1, 2):
            out = tmp / f"pipe{actors}-{r}"
            s = annotate_images(paths, str(out), engine=args.engine, actors=actors, progress=False)
            assert s["written"] + s["quarantined"] == n, s
            res[f"p{actors}"].append(s["stats"]["annotate_s"])
            res[f"p{actors}_wall"].append(s["stats"]["total_s"])
            rss += s["stats"]["actor_peak_rss_mb"]
            if actors == 2:
                again = annotate_images(paths, str(out), engine=args.engine, actors=actors, progress=False)
                assert again["written"] == 0 and again["skipped"] == n
                res["rerun"].append(again["stats"]["total_s"] / s["stats"]["total_s"])
        print(f"repeat {r}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in res.items()), flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\n{n} images, engine {args.engine}, load average {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"bare loop:       {n / med['bare']:6.2f} img/s")
    for a in (1, 2):
        print(f"pipeline {a} actor(s): {n / med[f'p{a}']:5.2f} img/s annotating "
              f"({n / med[f'p{a}_wall']:.2f} img/s wall incl. actor start)")
    print(f"ratio pipeline-1 / bare      = {med['bare'] / med['p1']:.2f}  "
          f"(target >= 0.9; wall {med['bare'] / med['p1_wall']:.2f})")
    print(f"ratio 2 actors / 1 actor     = {med['p1'] / med['p2']:.2f}  "
          f"(target >= 1.6; wall {med['p1_wall'] / med['p2_wall']:.2f})")
    print(f"re-run / first run (2 actors)= {med['rerun'] * 100:.1f}%  (target <= 5%)")
    print(f"peak RSS per actor           = {max(rss):.0f} MB (max of {len(rss)} actors)")


if __name__ == "__main__":
    main()
