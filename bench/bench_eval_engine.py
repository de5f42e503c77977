"""Engine evaluation's overhead: `unilseg eval-engine` against `unilseg annotate` alone on the
same images, without grounding (issue 23 wants eval <= 1.2x annotate).

    .venv/bin/python bench/bench_eval_engine.py [--images 24] [--actors 1] [--repeat 2]

A labeled split is made from scikit-image's photos (distinct copies, JPEG, as bench_annotate.py
makes them), each with two box targets. Each repeat runs, in a fresh output dir each time and
on one local Ray started first: annotate_images over the photos as files (annotate alone), then
evaluate_engine over the split (export, the same annotate, read back, COCOeval, MiniLM,
pictures, report), in alternating order, 3 s apart. Printed: both wall times, their ratio,
and where evaluation's extra time went (evaluate's total minus its annotate call).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_annotate import make_photos  # noqa: E402

from annotation_engine.driver import annotate_images  # noqa: E402
from annotation_engine.quality.run import evaluate_engine  # noqa: E402
from common.ray_runtime import ensure_ray  # noqa: E402
from shards.format import ImageInfo, Sample, Target  # noqa: E402
from shards.images import prepare_image  # noqa: E402
from shards.rle import mask_to_rle  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402


def make_split(paths: list[str], split_dir: Path) -> None:
    """The photos as a labeled split: two boxes per image (a quarter and a sixteenth of it)."""
    with ShardWriter(split_dir, max_count=64) as w:
        for i, p in enumerate(paths):
            st = prepare_image(Path(p).read_bytes())
            h, wd = st.height, st.width
            a, b = np.zeros((h, wd), bool), np.zeros((h, wd), bool)
            a[: h // 2, : wd // 2] = True
            b[h // 2 : h // 2 + h // 4, wd // 2 : wd // 2 + wd // 4] = True
            targets = [
                Target(["the top left"], mask_to_rle(a), "res", "instance", "bench"),
                Target(["a box"], mask_to_rle(b), "part", "part", "bench"),
            ]
            w.write(Sample(f"bench-img{i:03d}", ImageInfo(p, wd, h, st.sha256, "bench"), st.data, st.ext, targets))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--engine", default="weightfree")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-engine-"))
    try:
        paths = make_photos(tmp / "photos", args.images)
        make_split(paths, tmp / "data" / "bench" / "val")
        ensure_ray(num_cpus=2)
        run = {"engine": args.engine, "actors": args.actors}
        annotate_images(paths[:2], str(tmp / "warm"), progress=False, **run)  # Ray's workers started once
        for r in range(args.repeat):  # alternate which runs first: a run's actors wind down after it returns
            first_eval = r % 2 == 1
            times: dict[str, float] = {}
            for which in ("eval", "annotate") if first_eval else ("annotate", "eval"):
                time.sleep(3)
                t = time.perf_counter()
                if which == "annotate":
                    annotate_images(str(tmp / "photos"), str(tmp / f"ann{r}"), progress=False, split="val", **run)
                else:
                    m = evaluate_engine(
                        args.engine,
                        str(tmp / "data" / "bench"),
                        str(tmp / f"eval{r}"),
                        split="val",
                        progress=False,
                        actors=args.actors,
                    )
                times[which] = time.perf_counter() - t
            annotate_s, eval_s, inner = times["annotate"], times["eval"], m["run"]["annotate_seconds"]
            print(
                f"repeat {r + 1} ({'eval' if first_eval else 'annotate'} first): {args.images} images, "
                f"{args.actors} actor(s), load {os.getloadavg()[0]:.1f}: annotate {annotate_s:.1f} s, eval-engine "
                f"{eval_s:.1f} s (its annotate {inner:.1f} s, the rest {eval_s - inner:.1f} s): ratio "
                f"{eval_s / annotate_s:.2f}; AR@100 {m['masks']['AR@100']:.3f}, {m['masks']['n_proposals']} proposals"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
