"""Ranks model presets and training settings quickly: in-process training (no Ray), then the val mIoU.

    .venv/bin/python bench/rank_presets.py PRESET OUT --data DATA/shards [--steps 250 --batch-size 16 --lr 1e-3]

DATA is a set `bench/learn_synth.py --images 1500` wrote (DATA/shards/{train,val}). The
training is what a Ray Train worker does, on one process: unilseg.data.TargetDataset (one
DataLoader process, the full augmentation of learn_synth's default), the preset's model,
unilseg.losses.unilseg_loss, AdamW with gradient clipping 1.0, linear warm-up then cosine to
5 %; one torch thread, so two runs side by side share the 2 cores evenly. Then every val
target (first text) is scored by learn_synth.evaluate. Prints and writes OUT/rank.json:
steps, samples/s, load (`uptime`) at start and end, val mIoU / oIoU / P@0.5 and mIoU by
kind of expression. Compare runs at the same steps; throughput only between runs of one
session.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("preset", help="preset name or JSON path")
    p.add_argument("out")
    p.add_argument("--data", required=True, help="learn_synth's DATA/shards (train and val splits)")
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--aux-weight", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def train_batches(args: argparse.Namespace, model: Any) -> Iterator:
    """(images, token ids, masks) batches of the train split, with the demo's crops."""
    from learn_synth import CROPS
    from torch.utils.data import DataLoader

    from unilseg.data.augment import AugmentConfig
    from unilseg.data.dataset import TargetDataset

    dataset = TargetDataset(
        [(Path(args.data) / "train", 1.0)],
        model.tokenizer,
        model.config.input_size,
        seed=args.seed,
        rank=0,
        world_size=1,
        augment=AugmentConfig(**CROPS),
    )
    return iter(DataLoader(dataset, batch_size=args.batch_size, num_workers=1, prefetch_factor=4))


def train(args: argparse.Namespace, model: Any, batches: Iterator) -> float:
    """args.steps steps of AdamW on the worker's schedule, in this process; returns the seconds."""
    import torch

    from unilseg.losses import unilseg_loss
    from unilseg.train_config import TrainConfig
    from unilseg.train_worker import lr_at

    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    # the schedule a Ray Train worker follows (no time budget here)
    schedule = TrainConfig(
        data=[(str(Path(args.data) / "train"), 1.0)],
        out=str(args.out),
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
    )
    t0, window = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, schedule)
        images, ids, masks = next(batches)
        loss = unilseg_loss(model(images, ids), masks, aux_weight=args.aux_weight)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        window.append(float(loss.detach()))
        if step % 50 == 0:
            rate = step * args.batch_size / (time.perf_counter() - t0)
            print(f"step {step} loss {sum(window) / len(window):.3f} {rate:.1f} samples/s", flush=True)
            window = []
    return time.perf_counter() - t0


def main() -> None:
    args = parse_args()

    import torch
    from learn_synth import evaluate

    from unilseg.checkpoint import save_checkpoint
    from unilseg.model import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load0 = uptime()
    model = build_model(args.preset).train()
    train_s = train(args, model, train_batches(args, model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(out / "latest.pt", model, None, args.steps)
    load1 = uptime()
    scores = evaluate(str(checkpoint), Path(args.data) / "val", None)
    m = scores["model"]
    report = {
        "args": vars(args),
        "samples_per_s": args.steps * args.batch_size / train_s,
        "train_s": train_s,
        "load": [load0, load1],
        "mIoU": m["mIoU"],
        "oIoU": m["oIoU"],
        "prec@0.5": m["prec@0.5"],
        "by_kind": {k: round(v["mIoU"], 3) for k, v in scores["by_kind"].items()},
    }
    print(json.dumps(report))
    (out / "rank.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
