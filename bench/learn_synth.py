"""Does it learn? The demo's model on the synthetic referring set, held-out mIoU vs trivial baselines.

    .venv/bin/python bench/learn_synth.py --images 3000 --minutes 18 --out runs/learn_synth

Ranking ideas on the demo's set at a fixed step count (then compare throughput separately):

    .venv/bin/python bench/learn_synth.py --images 1500 --minutes 0 --steps 400 --preset my.json \
        --augment flip --lr 2e-3 --out runs/ls-a

1. `shards.synth.generate_shapes` (images at 128 px, splits train/val/testA/testB by image) and
   the real `refcoco` converter write DATA/train and DATA/val (skipped when already there).
2. `unilseg.train.run_training` trains the preset (default unilseg-demo, the demo's) with Ray
   Train for a training-time budget (--minutes; the cosine schedule follows the clock) or
   --steps (a rerun with the same --out resumes, or returns at once when finished).
3. Every target (its first text; --texts all: every (target, text)) of the val split is predicted
   as `unilseg.model.predict` does (threshold 0.35, the model's), batched, and scored with
   `unilseg.eval.metrics_referring.referring_metrics`, next to the
   empty-mask and whole-image baselines scored by the same function on the same items.
Prints wall times, the training throughput, the machine load (`uptime`), the model's mIoU by
kind of expression (attributes, position, relation, part, group), and writes OUT/learn_synth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flows.paths import PROJECT_ROOT as ROOT  # the checkout (the package is installed: no sys.path edit)

if TYPE_CHECKING:
    from unilseg.train_config import TrainConfig

# the crops of "--augment full", rank_presets.py and the demo (flows/configs/demo.yaml: YAML,
# so it repeats them): milder than the library default, and what every ranking here measured
CROPS = {"min_scale": 0.7, "max_scale": 1.05}


def make_data(root: Path, images: int, size: int, seed: int) -> Path:
    """Synthetic set in refer's layout, converted to shards under root/shards."""
    from shards.converters.convert import convert
    from shards.synth import generate_shapes

    src, out = root / "src", root / "shards"
    if not (src / "instances.json").exists():
        print(generate_shapes(src, images=images, seed=seed, size=size))
    for split in ("train", "val"):
        if not (out / split / "dataset.json").exists():
            s = convert("refcoco", src, out, split, max_count=250, progress=False)
            print(f"{split}: {s['counts']}")
    return out


KINDS = (
    ("group", re.compile(r"^all ")),
    ("part", re.compile(r"^the (roof|wall|head|body|crown|trunk)\b")),
    ("relation", re.compile(r" (left of|right of|above|below) ")),
    ("position", re.compile(r" (on the left|on the right|at the top|at the bottom)$")),
)


def expression_kind(text: str) -> str:
    """What a synthetic expression asks for: group, part, relation, position or attributes only."""
    for name, pattern in KINDS:
        if pattern.search(text):
            return name
    return "attributes"


def evaluate(checkpoint: str, split_dir: Path, limit: int | None, texts: str = "first", batch: int = 32) -> dict:
    """mIoU/oIoU of the model and of the two trivial baselines over the items of a split.

    Items: one per target (its first text) or one per (target, text) (texts="all", RefCOCO's
    protocol). Predictions are batched; each is exactly `unilseg.model.predict`'s (letterbox,
    forward, inverse warp, probability > the model's threshold 0.35).
    """
    import numpy as np
    import torch

    from shards.reader import ShardReader
    from unilseg.eval.metrics_referring import per_sample_iou, referring_metrics
    from unilseg.model.loading import load_model
    from unilseg.transforms import letterbox_image, logits_to_probs

    torch.set_num_threads(2)
    model = load_model(checkpoint)
    size, threshold = model.config.input_size, model.config.threshold
    items = []  # (rgb, text, gt)
    for sample, _, target in ShardReader(split_dir).targets():
        for text in target.texts if texts == "all" else target.texts[:1]:
            items.append((sample.rgb, text, target.mask_array()))
        if limit and len(items) >= limit:
            break
    preds = []
    with torch.no_grad():
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            x = torch.from_numpy(np.stack([letterbox_image(rgb, size)[0] for rgb, _, _ in chunk]))
            logits = model(x, model.tokenizer([t for _, t, _ in chunk]))["logits"]  # (B, 1, S/4, S/4)
            preds += [logits_to_probs(lg, rgb.shape[:2], size) > threshold for lg, (rgb, _, _) in zip(logits, chunk)]
    gts = [gt for _, _, gt in items]
    shapes = [rgb.shape[:2] for rgb, _, _ in items]
    ious = per_sample_iou(preds, gts)
    by_kind: dict[str, list[float]] = {}
    for (_, text, _), iou in zip(items, ious):
        by_kind.setdefault(expression_kind(text), []).append(float(iou))
    return {
        "by_kind": {k: {"mIoU": float(np.mean(v)), "n": len(v)} for k, v in sorted(by_kind.items())},
        "model": referring_metrics(preds, gts),
        "empty_mask": referring_metrics([np.zeros(s, bool) for s in shapes], gts),
        "whole_image": referring_metrics([np.ones(s, bool) for s in shapes], gts),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / "data" / "learn_synth"), help="where the synthetic set goes")
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "learn_synth"))
    p.add_argument("--preset", default="unilseg-demo", help="model preset name or JSON path (the demo's by default)")
    p.add_argument("--steps", type=int, default=100_000, help="step cap (the schedule's length when no budget)")
    p.add_argument(
        "--minutes",
        type=float,
        default=18.0,
        help="training-loop time budget (0 = none); Ray start-up and evaluation come on top",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--min-lr-ratio", type=float, default=0.05, help="the cosine ends at lr * this")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--aux-weight", type=float, default=0.5)
    p.add_argument("--bce-weight", type=float, default=1.0)
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument("--loader-workers", type=int, default=1)
    p.add_argument(
        "--augment",
        choices=("none", "flip", "full"),
        default="full",
        help="none: letterbox only; flip: horizontal flip with left/right swapped in the text, nothing "
        "else; full: crop/zoom, colour jitter and the flip (texts with left/right never flipped "
        "unless --swap-left-right)",
    )
    p.add_argument(
        "--swap-left-right", action="store_true", help="full augmentation: flip every text, swapping left and right"
    )
    p.add_argument("--no-augment", action="store_true", help="same as --augment none")
    p.add_argument(
        "--min-scale", type=float, default=CROPS["min_scale"], help="augmentation: smallest crop (zoom-in) fraction"
    )
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--val-limit", type=int, default=0, help="score at most this many val items (0 = all)")
    p.add_argument(
        "--texts",
        choices=("first", "all"),
        default="first",
        help="val items: each target's first text, or every (target, text) pair",
    )
    p.add_argument("--eval-only", action="store_true")
    return p.parse_args()


def augmentation(args: argparse.Namespace) -> dict | None:
    """TrainConfig.augment for --augment (or --no-augment)."""
    augment = "none" if args.no_augment else args.augment
    return {
        "none": None,
        "flip": {
            "min_scale": 1.0,
            "max_scale": 1.0,
            "translate": 0.0,
            "brightness": 0.0,
            "contrast": 0.0,
            "saturation": 0.0,
            "swap_left_right": True,
        },
        "full": {**CROPS, "min_scale": args.min_scale, "swap_left_right": args.swap_left_right},
    }[augment]


def train_config(args: argparse.Namespace, data: Path) -> TrainConfig:
    """The TrainConfig of the run from the command line."""
    from unilseg.train import TrainConfig

    return TrainConfig(
        preset=args.preset,
        data=[(str(data / "train"), 1.0)],
        out=args.out,
        workers=args.workers,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        aux_weight=args.aux_weight,
        bce_weight=args.bce_weight,
        dice_weight=args.dice_weight,
        checkpoint_every=args.checkpoint_every,
        log_every=25,
        seed=args.seed,
        num_loader_workers=args.loader_workers,
        threads_per_worker=args.threads,
        time_limit_s=args.minutes * 60 or None,
        augment=augmentation(args),
    )


def print_scores(scores: dict) -> None:
    """The model's and the two trivial baselines' scores, and the model's by expression kind."""
    print(f"{'':12s} {'mIoU':>7s} {'oIoU':>7s} {'P@0.5':>7s} {'P@0.7':>7s} {'P@0.9':>7s}")
    for name in ("model", "empty_mask", "whole_image"):
        m = scores[name]
        print(
            f"{name:12s} {m['mIoU']:7.3f} {m['oIoU']:7.3f} {m['prec@0.5']:7.3f} {m['prec@0.7']:7.3f} "
            f"{m['prec@0.9']:7.3f}"
        )
    print(
        "model mIoU by expression kind: "
        + ", ".join(f"{k} {v['mIoU']:.3f} (n={v['n']})" for k, v in scores["by_kind"].items())
    )


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a redirected log

    from unilseg.train import read_metrics, run_training

    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    data = make_data(Path(args.data), args.images, args.size, args.seed)
    t0 = time.perf_counter()
    cfg = train_config(args, data)
    result = run_training(cfg) if not args.eval_only else {"checkpoint": str(Path(args.out) / "latest.pt")}
    train_s = time.perf_counter() - t0
    reports = [r for r in read_metrics(args.out) if r.get("event") == "report"]
    if reports:  # throughput over the whole run: samples seen / training-loop seconds
        last = reports[-1]
        result["samples_per_s"] = last["step"] * args.batch_size / max(last["train_seconds"], 1e-9)
        result["train_seconds"] = last["train_seconds"]
    print(f"trained in {train_s / 60:.1f} min: {result}")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    t1 = time.perf_counter()
    scores = evaluate(result["checkpoint"], data / "val", args.val_limit or None, args.texts)
    print(f"evaluated {int(scores['model']['n'])} val items in {time.perf_counter() - t1:.0f} s")
    print_scores(scores)
    report = {
        "args": vars(args),
        "train_minutes": train_s / 60,
        "result": result,
        "scores": scores,
        "cpus": os.cpu_count(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "learn_synth.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
