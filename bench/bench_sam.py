"""SAM automatic mask generation: segment-anything's generator vs ours, same masks.

    .venv/bin/python bench/bench_sam.py [--model vit_b] [--side 1024] [--points 32] [--repeat 2]
    .venv/bin/python bench/bench_sam.py --precision bf16 --side 512 --points 16 --repeat 1 [--nms 1.0]

One process, one randomly initialised model (seed 0), one photo (scikit-image's coffee,
resized so its longest side is --side). ``pred_iou_thresh`` is the 70th percentile of this
model's predicted IoUs on the image (measured on an 8 x 8 sub-grid of prompts: about 30%
of the candidates pass, as SAM's 0.88 does on real weights), ``stability_score_thresh`` 0.
Each repeat runs the whole ``generate`` of segment-anything's SamAutomaticMaskGenerator and
of our ExactMaskGenerator, alternating which goes first; both include the image encoder.
Prints each wall time and CPU time (this process, all threads), the ratios stock / ours
(medians over repeats) and whether the outputs were identical (every mask equal, scores
equal, same order). On a shared machine whose load swings, the CPU-time ratio with
--threads 1 is the figure to trust.

With --precision bf16/fp16, "ours" runs under autocast and the script prints the mean
IoU of each exact-path mask with its best match among the mixed-precision masks (and
the other way round) instead of "identical".
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]


def photo(side: int) -> np.ndarray:
    import skimage.data
    from PIL import Image

    rgb = skimage.data.coffee()  # (400, 600, 3)
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    return np.asarray(Image.fromarray(rgb).resize((round(w * s), round(h * s)), Image.BICUBIC))


def iou_threshold(sam, image: np.ndarray, quantile: float = 0.7) -> float:
    """The quantile of the model's predicted IoUs over an 8 x 8 grid of prompts."""
    from segment_anything import SamPredictor
    from segment_anything.utils.amg import build_point_grid

    h, w = image.shape[:2]
    p = SamPredictor(sam)
    with torch.inference_mode():
        p.set_image(image)
        pts = torch.as_tensor(p.transform.apply_coords(build_point_grid(8) * [[w, h]], (h, w)))
        _, iou, _ = p.predict_torch(pts[:, None, :], torch.ones(len(pts), 1, dtype=torch.int), multimask_output=True)
    return float(np.quantile(iou.flatten().numpy(), quantile))


def identical(stock: list[dict], ours: list) -> bool:
    return len(stock) == len(ours) and all(
        np.array_equal(a["segmentation"], b.mask) and a["predicted_iou"] == b.predicted_iou
        and (a["stability_score"] == b.stability_score
             or (np.isnan(a["stability_score"]) and np.isnan(b.stability_score)))
        for a, b in zip(stock, ours))


def best_match_iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean over masks of a of the best IoU with a mask of b."""
    if not a:
        return float("nan")
    fa = np.stack([m.ravel() for m in a]).astype(np.float32)
    fb = np.stack([m.ravel() for m in b]).astype(np.float32) if b else np.zeros((1, fa.shape[1]), np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return float(np.mean(np.max(np.where(union > 0, inter / np.maximum(union, 1), 1.0), axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_b")
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--nms", type=float, default=0.7, help="box_nms_thresh (1.0 keeps every candidate that "
                    "passes the thresholds: random weights give near-whole-image masks that NMS folds into one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from segment_anything import SamAutomaticMaskGenerator

    from annotation_engine.mask_generators.sam import SAM_BUILDERS
    from annotation_engine.mask_generators.sam_amg import ExactMaskGenerator

    torch.manual_seed(0)
    sam = SAM_BUILDERS[args.model]().eval()  # segment-anything's builder, random weights
    image = photo(args.side)
    t0 = time.perf_counter()
    thresh = iou_threshold(sam, image)
    print(f"model {args.model} (random, seed 0), image {image.shape[1]}x{image.shape[0]}, points {args.points}^2, "
          f"pred_iou_thresh {thresh:.5f} (70th percentile, {time.perf_counter() - t0:.0f} s to measure), "
          f"stability_score_thresh 0, box_nms_thresh {args.nms}, threads {args.threads}, precision {args.precision}",
          flush=True)
    params = dict(points_per_side=args.points, pred_iou_thresh=thresh, stability_score_thresh=0.0,
                  box_nms_thresh=args.nms)
    stock_gen = SamAutomaticMaskGenerator(sam, **params)
    ours_gen = ExactMaskGenerator(sam, precision=args.precision, **params)

    times: dict[str, list[float]] = {"stock": [], "ours": []}
    cpu: dict[str, list[float]] = {"stock": [], "ours": []}  # CPU seconds of this process (all threads)
    outputs: dict[str, list] = {}
    for r in range(args.repeat):
        for name in (["stock", "ours"] if r % 2 == 0 else ["ours", "stock"]):
            before = load()
            t, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                out = stock_gen.generate(image) if name == "stock" else ours_gen.generate(image)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            outputs[name] = out
            print(f"repeat {r} {name}: {times[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU, {len(out)} masks "
                  f"(load before {before}, after {load()})", flush=True)
        print(f"  candidates {ours_gen.stats}", flush=True)
    stock_t, ours_t = statistics.median(times["stock"]), statistics.median(times["ours"])
    print(f"stock {stock_t:.1f} s, ours {ours_t:.1f} s wall (medians of {args.repeat}): ratio {stock_t / ours_t:.2f}x")
    stock_c, ours_c = statistics.median(cpu["stock"]), statistics.median(cpu["ours"])
    print(f"stock {stock_c:.1f} s, ours {ours_c:.1f} s CPU (medians of {args.repeat}): ratio {stock_c / ours_c:.2f}x "
          "(CPU time: the work done, less sensitive to a loaded machine; exact with --threads 1)")
    if args.precision == "fp32":
        print("identical" if identical(outputs["stock"], outputs["ours"]) else "DIFFERENT")
    else:
        exact = [m["segmentation"] for m in outputs["stock"]]
        mixed = [m.mask for m in outputs["ours"]]
        print(f"{args.precision}: {len(mixed)} masks vs {len(exact)} exact; mean best-match IoU exact->mixed "
              f"{best_match_iou(exact, mixed):.4f}, mixed->exact {best_match_iou(mixed, exact):.4f}")


if __name__ == "__main__":
    main()
