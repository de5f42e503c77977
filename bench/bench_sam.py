"""SAM automatic mask generation: segment-anything's generator vs ours, same masks.

    .venv/bin/python bench/bench_sam.py [--model vit_b] [--size 1024x768] [--points 32] [--repeat 3]
                                        [--threads T] [--nms 0.7] [--stability Q]
    .venv/bin/python bench/bench_sam.py --precision bf16 --size 512x384 --points 16 --repeat 1

One process, one randomly initialised model (seed 0), one photo: scikit-image's astronaut
(512 x 512) resized with PIL's bicubic filter to --size, width x height (the default
1024x768 stretches it 2x across and 1.5x down). ``pred_iou_thresh`` is the 70th percentile
of this model's predicted IoUs on the image (measured with SamPredictor on an 8 x 8 grid of
prompts: about 30% of the candidates pass, as SAM's 0.88 does on real weights).
``stability_score_thresh`` is 0 unless --stability Q is given: then it is the Q quantile of
the stability of the probe's IoU survivors, and ``stability_score_offset`` is the median
|low-res logit| of the probe (random weights keep logits within +-0.5, so SAM's offset of 1
gives stability 0 everywhere).

Each repeat runs the whole ``generate`` of segment-anything's SamAutomaticMaskGenerator and
of our ExactMaskGenerator, both including the image encoder; stock goes first in even
repeats, ours in odd ones. Prints each wall and CPU time (this process, all threads) with
the machine's load, then the median and spread (min-max) over the repeats of stock, ours
and the ratio stock / ours (per repeat). Every repeat compares the two outputs record by
record (mask, area, bbox, predicted_iou, stability_score, point_coords, crop_box; floats
bit for bit) and prints how many records it compared. --threads defaults to torch's own
default (the core count; 2 here), what a user gets.

With --precision bf16/fp16, "ours" runs under autocast and the script prints the mean
IoU of each exact-path mask with its best match among the mixed-precision masks (and
the other way round) instead of comparing records.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import numpy as np
import torch


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]


def photo(width: int, height: int) -> np.ndarray:
    """scikit-image's astronaut (512 x 512 RGB), bicubic-resized to width x height."""
    import skimage.data
    from PIL import Image

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.BICUBIC))


def thresholds(sam, image: np.ndarray, stability_quantile: float | None) -> tuple[float, float, float]:
    """(pred_iou_thresh, stability_score_thresh, stability_score_offset) from the model's
    own outputs on an 8 x 8 grid of prompts (SamPredictor, multimask)."""
    from segment_anything import SamPredictor
    from segment_anything.utils.amg import build_point_grid, calculate_stability_score

    h, w = image.shape[:2]
    p = SamPredictor(sam)
    with torch.inference_mode():
        p.set_image(image)
        pts = torch.as_tensor(p.transform.apply_coords(build_point_grid(8) * [[w, h]], (h, w)))
        logits, iou, low = p.predict_torch(
            pts[:, None, :], torch.ones(len(pts), 1, dtype=torch.int), multimask_output=True, return_logits=True
        )
        iou = iou.flatten().numpy()
        iou_t = float(np.quantile(iou, 0.7))
        if stability_quantile is None:
            return iou_t, 0.0, 1.0
        offset = float(low.abs().median())
        stab = calculate_stability_score(logits.flatten(0, 1), sam.mask_threshold, offset).numpy()
    return iou_t, float(np.nanquantile(stab[iou > iou_t], stability_quantile)), offset


def differences(stock: list[dict], ours: list) -> list[str]:
    """Where the two outputs differ, record by record (empty: identical)."""

    def xyxy(b):
        return [int(b[0]), int(b[1]), int(b[0] + b[2]), int(b[1] + b[3])]

    if len(stock) != len(ours):
        return [f"{len(stock)} records vs {len(ours)}"]
    out = []
    for i, (a, b) in enumerate(zip(stock, ours)):
        same_stab = a["stability_score"] == b.stability_score or (
            np.isnan(a["stability_score"]) and np.isnan(b.stability_score)
        )
        checks = {
            "mask": np.array_equal(a["segmentation"], b.mask),
            "area": a["area"] == int(b.mask.sum()),
            "bbox": xyxy(a["bbox"]) == [int(v) for v in b.box],
            "predicted_iou": a["predicted_iou"] == b.predicted_iou,
            "stability_score": same_stab,
            "point_coords": a["point_coords"] == [b.point_coords],
            "crop_box": xyxy(a["crop_box"]) == [int(v) for v in b.crop_box],
        }
        out += [f"record {i}: {k}" for k, ok in checks.items() if not ok]
    return out


def best_match_iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean over masks of a of the best IoU with a mask of b."""
    if not a:
        return float("nan")
    fa = np.stack([m.ravel() for m in a]).astype(np.float32)
    fb = np.stack([m.ravel() for m in b]).astype(np.float32) if b else np.zeros((1, fa.shape[1]), np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return float(np.mean(np.max(np.where(union > 0, inter / np.maximum(union, 1), 1.0), axis=1)))


def spread(values: list[float], unit: str = " s") -> str:
    return f"{statistics.median(values):.2f}{unit} (min {min(values):.2f}, max {max(values):.2f})"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_b")
    ap.add_argument("--size", default="1024x768", help="width x height of the resized photo")
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own default)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument(
        "--nms",
        type=float,
        default=0.7,
        help="box_nms_thresh (1.0 keeps every candidate that "
        "passes the thresholds: random weights give near-whole-image masks that NMS folds into one)",
    )
    ap.add_argument(
        "--stability",
        type=float,
        default=None,
        metavar="Q",
        help="stability_score_thresh at this quantile of the probe's survivors (default: threshold 0)",
    )
    return ap.parse_args()


def generators(args: argparse.Namespace, image: np.ndarray) -> tuple:
    """segment-anything's generator and ours on the same random model, with thresholds measured
    on the image; prints the setting."""
    from segment_anything import SamAutomaticMaskGenerator

    from annotation_engine.mask_generators.sam import SAM_BUILDERS
    from annotation_engine.mask_generators.sam_amg import ExactMaskGenerator

    torch.manual_seed(0)
    sam = SAM_BUILDERS[args.model]().eval()  # segment-anything's builder, random weights
    t0 = time.perf_counter()
    iou_t, stab_t, offset = thresholds(sam, image, args.stability)
    height, width = image.shape[:2]
    print(
        f"model {args.model} (random, seed 0), astronaut {width}x{height}, points {args.points}^2, "
        f"pred_iou_thresh {iou_t:.5f} (70th percentile), stability_score_thresh {stab_t:.5f} "
        f"(offset {offset:.5f}), box_nms_thresh {args.nms}, threads {torch.get_num_threads()}, precision "
        f"{args.precision} ({time.perf_counter() - t0:.0f} s to measure the thresholds; load {load()})",
        flush=True,
    )
    params = dict(
        points_per_side=args.points,
        pred_iou_thresh=iou_t,
        stability_score_thresh=stab_t,
        stability_score_offset=offset,
        box_nms_thresh=args.nms,
    )
    return SamAutomaticMaskGenerator(sam, **params), ExactMaskGenerator(sam, precision=args.precision, **params)


def run_repeat(r: int, gens: dict, image: np.ndarray, wall: dict, cpu: dict) -> dict:
    """One repeat: both generators (stock first in even repeats), times appended to wall/cpu."""
    out = {}
    for name in ["stock", "ours"] if r % 2 == 0 else ["ours", "stock"]:
        before = load()
        t, c = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out[name] = gens[name].generate(image)
        wall[name].append(time.perf_counter() - t)
        cpu[name].append(time.process_time() - c)
        print(
            f"repeat {r} {name}: {wall[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU, {len(out[name])} "
            f"masks (load before {before}, after {load()})",
            flush=True,
        )
    print(f"  candidates {gens['ours'].stats}", flush=True)
    return out


def compare(precision: str, out: dict) -> list[str]:
    """fp32: prints and returns the records' differences; else the masks' best-match IoUs."""
    if precision == "fp32":
        diff = differences(out["stock"], out["ours"])
        print(
            f"  {len(out['stock'])} records compared: "
            + ("identical" if not diff else "DIFFERENT: " + "; ".join(diff[:10])),
            flush=True,
        )
        return diff
    exact, mixed = [m["segmentation"] for m in out["stock"]], [m.mask for m in out["ours"]]
    print(
        f"  {precision}: {len(mixed)} masks vs {len(exact)} exact; mean best-match IoU exact->mixed "
        f"{best_match_iou(exact, mixed):.4f}, mixed->exact {best_match_iou(mixed, exact):.4f}",
        flush=True,
    )
    return []


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image = photo(width, height)
    stock_gen, ours_gen = generators(args, image)
    gens = {"stock": stock_gen, "ours": ours_gen}
    wall: dict[str, list[float]] = {"stock": [], "ours": []}
    cpu: dict[str, list[float]] = {"stock": [], "ours": []}  # CPU seconds of this process (all threads)
    compared, differing = [], 0
    for r in range(args.repeat):
        out = run_repeat(r, gens, image, wall, cpu)
        diff = compare(args.precision, out)
        if args.precision == "fp32":
            compared.append(len(out["stock"]))
            differing += bool(diff)
    n = args.repeat
    for label, t in (("wall", wall), ("CPU", cpu)):
        ratios = [s / o for s, o in zip(t["stock"], t["ours"])]
        print(
            f"{label} over {n} repeats, median (min, max): stock {spread(t['stock'])}, ours {spread(t['ours'])}, "
            f"ratio stock/ours {spread(ratios, 'x')}"
        )
    if args.precision == "fp32":
        print(
            f"outputs: {'identical' if not differing else 'DIFFERENT'} in {n - differing} of {n} repeats "
            f"({sum(compared)} records compared, {compared[-1]} per repeat)"
        )


if __name__ == "__main__":
    main()
