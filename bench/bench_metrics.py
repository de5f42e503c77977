"""Speed of referring_metrics / gres_metrics vs bare np.count_nonzero on the same masks.

    .venv/bin/python bench/bench_metrics.py [--pairs 5000] [--size 480] [--repeat 3]

Builds `--pairs` random (pred, gt) bool pairs of size x size once (5000 x 480 x 480 x 2
bytes = 2.3 GB; pass --pairs 2000 on a small machine, the per-pair time is what matters),
a quarter of the ground truths None (no-target) for gres_metrics. Baseline: one
np.count_nonzero on the prediction and one on the ground truth per pair, the least any
metric must do. Each timing is the best of --repeat runs; the ratio is ours / baseline
time. Prints one markdown table row per function.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unilseg.eval.metrics import gres_metrics, referring_metrics  # noqa: E402


def make_pairs(n: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """n predictions and ground truths: noisy rectangles, a quarter of the gts None."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size, size), dtype=np.float32) < 0.02
    preds, gts = [], []
    for i in range(n):
        y, x, h, w = rng.integers(0, size // 2, 4)
        g = np.zeros((size, size), bool)
        g[y: y + h + 8, x: x + w + 8] = True
        p = np.roll(g, int(rng.integers(-20, 21)), axis=int(i % 2)) ^ np.roll(noise, i, axis=0)
        preds.append(p)
        gts.append(g)
    return preds, gts


def baseline(preds, gts) -> None:
    for p, g in zip(preds, gts):
        np.count_nonzero(p)
        if g is not None:
            np.count_nonzero(g)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t = time.perf_counter()
    preds, gts = make_pairs(args.pairs, args.size)
    gres_gts = [None if i % 4 == 0 else g for i, g in enumerate(gts)]
    build = time.perf_counter() - t
    mem_gb = sum(p.nbytes + g.nbytes for p, g in zip(preds, gts)) / 1e9
    print(f"{args.pairs} pairs of {args.size}x{args.size} bool built in {build:.1f} s "
          f"({mem_gb:.2f} GB held in lists), best of {args.repeat}\n")

    print("| function | pairs | ours (s) | count_nonzero baseline (s) | ratio | µs / pair |")
    print("|---|---|---|---|---|---|")
    for name, fn, g in [("referring_metrics", referring_metrics, gts),
                        ("gres_metrics", gres_metrics, gres_gts)]:
        base = best_of(lambda: baseline(preds, g), args.repeat)
        ours = best_of(lambda: fn(preds, g), args.repeat)
        print(f"| {name} | {args.pairs} | {ours:.3f} | {base:.3f} | {ours / base:.2f} | "
              f"{1e6 * ours / args.pairs:.0f} |")


if __name__ == "__main__":
    main()
