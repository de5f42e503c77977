"""Cost of `evaluate(predictions=DIR)` against the least work any scorer must do.

    .venv/bin/python bench/bench_eval.py [--images 300] [--size 480] [--repeat 2]

Writes a split of `--images` images of size x size with two res targets each (random
boxes) and a PNG per target (the ground truth shifted a little), once, in a temp dir.
Baseline: read every target's ground truth and PNG into lists held in memory, then one
`referring_metrics` call. Ours: `evaluate(...)` over the same files, which also keeps
predictions as RLE and decodes them lazily, computes per-sample IoU, draws the overlay
sheet and writes the report. Prints wall time (best of --repeat) and peak traced memory
(tracemalloc) of both, and the ratios ours / baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

from shards.format import ImageInfo, Sample, Target  # noqa: E402
from shards.images import prepare_image  # noqa: E402
from shards.keys import make_key, target_id  # noqa: E402
from shards.reader import ShardReader  # noqa: E402
from shards.rle import mask_to_rle  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402
from unilseg.eval.evaluate import evaluate  # noqa: E402
from unilseg.eval.metrics_referring import referring_metrics  # noqa: E402


def build(root: Path, images: int, size: int) -> None:
    import io

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    st = prepare_image(buf.getvalue())
    (root / "pred").mkdir(parents=True)
    with ShardWriter(root / "ds" / "val", max_count=100) as w:
        for i in range(images):
            key, targets = make_key("bench", f"{i}.jpg"), []
            for ti in range(2):
                y, x, h, wd = rng.integers(0, size // 2, 4)
                gt = np.zeros((size, size), bool)
                gt[y : y + h + 8, x : x + wd + 8] = True
                targets.append(Target([f"box {ti}"], mask_to_rle(gt), "res", "instance", "bench"))
                pred = np.roll(gt, int(rng.integers(-15, 16)), axis=ti)
                Image.fromarray(pred.astype(np.uint8) * 255).save(root / "pred" / f"{target_id(key, ti)}.png")
            w.write(Sample(key, ImageInfo(str(i), size, size, st.sha256, "bench"), st.data, st.ext, targets))


def baseline(root: Path) -> dict:
    preds, gts = [], []
    for sample, ti, t in ShardReader(root / "ds" / "val").targets(decode_images=False):
        gts.append(t.mask_array())
        preds.append(np.asarray(Image.open(root / "pred" / f"{target_id(sample.key, ti)}.png")) > 127)
    return referring_metrics(preds, gts)


def ours(root: Path) -> dict:
    return evaluate(str(root / "ds"), str(root / "out"), predictions=str(root / "pred"), progress=False)["res"]


def measure(fn, root: Path, repeat: int) -> tuple[float, float, dict]:
    best, peak, result = float("inf"), 0.0, {}
    for _ in range(repeat):
        tracemalloc.start()
        t = time.perf_counter()
        result = fn(root)
        best = min(best, time.perf_counter() - t)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    return best, peak, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        build(root, args.images, args.size)
        print(
            f"{2 * args.images} targets on {args.images} images of {args.size}x{args.size} built in "
            f"{time.perf_counter() - t:.1f} s; best of {args.repeat}\n"
        )
        tb, mb, rb = measure(baseline, root, args.repeat)
        to, mo, ro = measure(ours, root, args.repeat)
        assert abs(rb["oIoU"] - ro["oIoU"]) < 1e-12 and abs(rb["mIoU"] - ro["mIoU"]) < 1e-12, (rb, ro)
        print("| run | targets | time (s) | peak traced MB | time ratio | memory ratio |")
        print("|---|---|---|---|---|---|")
        print(f"| baseline: lists + referring_metrics | {2 * args.images} | {tb:.2f} | {mb:.0f} | 1.00 | 1.00 |")
        print(
            f"| evaluate(predictions=...) | {2 * args.images} | {to:.2f} | {mo:.0f} | {to / tb:.2f} | {mo / mb:.2f} |"
        )
        print(f"\nsame numbers: oIoU {ro['oIoU']:.6f}, mIoU {ro['mIoU']:.6f}")


if __name__ == "__main__":
    main()
