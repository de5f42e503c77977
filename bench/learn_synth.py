"""Does it learn? unilseg-tiny on the synthetic referring set, held-out mIoU vs trivial baselines.

    .venv/bin/python bench/learn_synth.py --images 3000 --minutes 18 --workers 2 --batch-size 8 \
        --lr 1.5e-3 --no-augment --out runs/learn_synth

1. `shards.synth.generate_shapes` (images at 128 px, splits train/val/testA/testB by image) and
   the real `refcoco` converter write DATA/train and DATA/val (skipped when already there).
2. `unilseg.train.run_training` trains unilseg-tiny with Ray Train for a training-time budget
   (--minutes; the cosine schedule follows the clock) or --steps (a rerun with the same --out
   resumes, or returns at once when finished).
3. Every target (its first text; --texts all: every (target, text)) of the val split is predicted
   as `unilseg.model.predict` does (threshold 0.35, the model's), batched, and scored with `unilseg.eval.metrics.referring_metrics`, next to the
   empty-mask and whole-image baselines scored by the same function on the same items.
Prints wall times and the machine load (`uptime`), and writes OUT/learn_synth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def evaluate(checkpoint: str, split_dir: Path, limit: int | None, texts: str = "first", batch: int = 32) -> dict:
    """mIoU/oIoU of the model and of the two trivial baselines over the items of a split.

    Items: one per target (its first text) or one per (target, text) (texts="all", RefCOCO's
    protocol). Predictions are batched; each is exactly `unilseg.model.predict`'s (letterbox,
    forward, inverse warp, probability > the model's threshold 0.35).
    """
    import numpy as np
    import torch

    from shards.reader import ShardReader
    from unilseg.eval.metrics import referring_metrics
    from unilseg.model.loading import load_model
    from unilseg.transforms import letterbox_image, logits_to_probs

    torch.set_num_threads(2)
    model = load_model(checkpoint)
    size, threshold = model.config.input_size, model.config.threshold
    items = []  # (rgb, text, gt)
    for sample, _, target in ShardReader(split_dir).targets():
        for text in (target.texts if texts == "all" else target.texts[:1]):
            items.append((sample.rgb, text, target.mask_array()))
        if limit and len(items) >= limit:
            break
    preds = []
    with torch.no_grad():
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            x = torch.from_numpy(np.stack([letterbox_image(rgb, size)[0] for rgb, _, _ in chunk]))
            logits = model(x, model.tokenizer([t for _, t, _ in chunk]))["logits"]  # (B, 1, S/4, S/4)
            preds += [logits_to_probs(lg, rgb.shape[:2], size) > threshold for lg, (rgb, _, _) in zip(logits, chunk)]
    gts = [gt for _, _, gt in items]
    shapes = [rgb.shape[:2] for rgb, _, _ in items]
    return {"model": referring_metrics(preds, gts),
            "empty_mask": referring_metrics([np.zeros(s, bool) for s in shapes], gts),
            "whole_image": referring_metrics([np.ones(s, bool) for s in shapes], gts)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / "data" / "learn_synth"), help="where the synthetic set goes")
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "learn_synth"))
    p.add_argument("--steps", type=int, default=100_000, help="step cap (the schedule's length when no budget)")
    p.add_argument("--minutes", type=float, default=18.0, help="training-loop time budget (0 = none); Ray start-up "
                   "and evaluation come on top")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--loader-workers", type=int, default=1)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--min-scale", type=float, default=0.7, help="augmentation: smallest crop (zoom-in) fraction")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--val-limit", type=int, default=0, help="score at most this many val items (0 = all)")
    p.add_argument("--texts", choices=("first", "all"), default="first",
                   help="val items: each target's first text, or every (target, text) pair")
    p.add_argument("--eval-only", action="store_true")
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a redirected log

    from unilseg.train import TrainConfig, run_training

    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    data = make_data(Path(args.data), args.images, args.size, args.seed)
    t0 = time.perf_counter()
    cfg = TrainConfig(preset="unilseg-tiny", data=[(str(data / "train"), 1.0)], out=args.out, workers=args.workers,
                      steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
                      checkpoint_every=args.checkpoint_every, log_every=25, seed=args.seed,
                      num_loader_workers=args.loader_workers, time_limit_s=args.minutes * 60 or None,
                      augment=None if args.no_augment else {"min_scale": args.min_scale, "max_scale": 1.05})
    result = run_training(cfg) if not args.eval_only else {"checkpoint": str(Path(args.out) / "latest.pt")}
    train_s = time.perf_counter() - t0
    print(f"trained in {train_s / 60:.1f} min: {result}")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    t1 = time.perf_counter()
    scores = evaluate(result["checkpoint"], data / "val", args.val_limit or None, args.texts)
    print(f"evaluated {int(scores['model']['n'])} val items in {time.perf_counter() - t1:.0f} s")
    print(f"{'':12s} {'mIoU':>7s} {'oIoU':>7s} {'P@0.5':>7s} {'P@0.7':>7s} {'P@0.9':>7s}")
    for name, m in scores.items():
        print(f"{name:12s} {m['mIoU']:7.3f} {m['oIoU']:7.3f} {m['prec@0.5']:7.3f} {m['prec@0.7']:7.3f} "
              f"{m['prec@0.9']:7.3f}")
    report = {"args": vars(args), "train_minutes": train_s / 60, "result": result, "scores": scores,
              "cpus": os.cpu_count()}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "learn_synth.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
