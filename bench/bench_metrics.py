"""Speed of referring_metrics / gres_metrics vs bare np.count_nonzero on the same masks,
and of sod_metrics' MAE and max F-measure through pysodmetrics vs our former hand-written code.

    .venv/bin/python bench/bench_metrics.py [--pairs 5000] [--size 480] [--repeat 3] [--sod-maps 300]

Builds `--pairs` random (pred, gt) bool pairs of size x size once (5000 x 480 x 480 x 2
bytes = 2.3 GB; pass --pairs 2000 on a small machine, the per-pair time is what matters),
a quarter of the ground truths None (no-target) for gres_metrics. Baseline: one
np.count_nonzero on the prediction and one on the ground truth per pair, the least any
metric must do. Each timing is the best of --repeat runs; the ratio is ours / baseline
time. Prints one markdown table row per function.

SOD (issue 12: a library where one does the job, unless it costs > 20 %): --sod-maps float
maps with their ground truths; each of MAE and max F-measure through pysodmetrics (MAE,
FmeasureV2) vs by hand (the MAE sod_metrics had before, kept below; the F curve
sod_metrics keeps, `_f_curve`), same numbers checked; and the whole sod_metrics for scale.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

from unilseg.eval.metrics_referring import gres_metrics, referring_metrics  # noqa: E402
from unilseg.eval.metrics_sod import sod_metrics  # noqa: E402

LEVELS, BETA2 = 256, 0.3


def handwritten_mae(maps, gts) -> float:
    """MAE as sod_metrics computed it by hand before issue 12."""
    return float(np.mean([np.mean(np.abs(p - g)) for p, g in zip(maps, gts)]))


def library_mae(maps, gts) -> float:
    from py_sod_metrics import MAE

    mae = MAE()
    for p, g in zip(maps, gts):
        mae.step(p, g, normalize=False)
    return float(mae.get_results()["mae"])


def handwritten_maxf(maps, gts) -> float:
    """Max F-measure through one 512-bin bincount per map (unilseg.eval.metrics_sod._f_curve)."""
    from unilseg.eval.metrics_sod import _f_curve

    return float((sum(_f_curve(p, g, BETA2) for p, g in zip(maps, gts)) / len(maps)).max())


def library_maxf(maps, gts) -> float:
    """Max F-measure through pysodmetrics' FmeasureV2 (two np.histogram calls per map)."""
    from py_sod_metrics import FmeasureHandler, FmeasureV2

    fm = FmeasureV2({"f": FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=BETA2)})
    for p, g in zip(maps, gts):
        fm.step(p, g, normalize=False)
    return float(fm.get_results()["f"]["dynamic"].max())


def make_pairs(n: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """n predictions and ground truths: noisy rectangles, a quarter of the gts None."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size, size), dtype=np.float32) < 0.02
    preds, gts = [], []
    for i in range(n):
        y, x, h, w = rng.integers(0, size // 2, 4)
        g = np.zeros((size, size), bool)
        g[y : y + h + 8, x : x + w + 8] = True
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
    ap.add_argument("--sod-maps", type=int, default=300)
    args = ap.parse_args()

    t = time.perf_counter()
    preds, gts = make_pairs(args.pairs, args.size)
    gres_gts = [None if i % 4 == 0 else g for i, g in enumerate(gts)]
    build = time.perf_counter() - t
    mem_gb = sum(p.nbytes + g.nbytes for p, g in zip(preds, gts)) / 1e9
    print(
        f"{args.pairs} pairs of {args.size}x{args.size} bool built in {build:.1f} s "
        f"({mem_gb:.2f} GB held in lists), best of {args.repeat}\n"
    )

    print("| function | pairs | ours (s) | count_nonzero baseline (s) | ratio | µs / pair |")
    print("|---|---|---|---|---|---|")
    for name, fn, g in [("referring_metrics", referring_metrics, gts), ("gres_metrics", gres_metrics, gres_gts)]:
        base = best_of(lambda g=g: baseline(preds, g), args.repeat)
        ours = best_of(lambda fn=fn, g=g: fn(preds, g), args.repeat)
        print(
            f"| {name} | {args.pairs} | {ours:.3f} | {base:.3f} | {ours / base:.2f} | {1e6 * ours / args.pairs:.0f} |"
        )

    rng = np.random.default_rng(1)
    maps = [np.clip(g.astype(np.float64) * 0.6 + rng.random(g.shape) * 0.4, 0, 1) for g in gts[: args.sod_maps]]
    sod_gts = gts[: args.sod_maps]
    print(f"\n{len(maps)} SOD maps of {args.size}x{args.size} float64, best of {args.repeat}\n")
    print("| SOD metric | hand-written (s) | pysodmetrics (s) | library / hand-written |")
    print("|---|---|---|---|")
    for name, hand_fn, lib_fn in [("MAE", handwritten_mae, library_mae), ("maxF", handwritten_maxf, library_maxf)]:
        if abs(hand_fn(maps, sod_gts) - lib_fn(maps, sod_gts)) > 1e-12:
            raise SystemExit(f"{name}: pysodmetrics and the hand-written code disagree")
        hand = best_of(lambda f=hand_fn: f(maps, sod_gts), args.repeat)
        lib = best_of(lambda f=lib_fn: f(maps, sod_gts), args.repeat)
        print(f"| {name} | {hand:.3f} | {lib:.3f} | {lib / hand:.2f}x |")
    whole = best_of(lambda: sod_metrics(maps, sod_gts, normalize=False), args.repeat)
    print(f"| whole sod_metrics as shipped (MAE, maxF, S-measure) | {whole:.3f} | | |")


if __name__ == "__main__":
    main()
