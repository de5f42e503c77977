"""Training throughput: Ray Train with 1 vs 2 workers (same global batch), and the data loader
alone vs what one training worker consumes.

    .venv/bin/python bench/bench_train.py [--images 300] [--batch-size 16] [--steps 60]

Data: a synthetic referring set at 128 px (generated into a temp dir), unilseg-tiny.
- loader: TargetDataset with the default augmentation, DataLoader with 0 and 1 worker
  processes, samples/s over --loader-batches batches of the per-worker batch (one thread).
- consume: forward + backward + AdamW step of unilseg-tiny on one thread, per-worker batch
  of the 2-worker run, on a batch already in memory: what one Ray worker eats per second.
- ray: `run_training` with 1 and 2 workers, global batch --batch-size, samples/s as reported by
  rank 0 (global samples / wall time between reports), median over reports after the first.
Ratios are against baselines measured in the same run (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flows.paths import PROJECT_ROOT  # noqa: E402  (the checkout: where data/ and runs/ go)

ROOT = PROJECT_ROOT

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from shards.converters.convert import convert  # noqa: E402
from shards.synth import generate_shapes  # noqa: E402
from unilseg.data.augment import AugmentConfig  # noqa: E402
from unilseg.data.dataset import TargetDataset  # noqa: E402
from unilseg.losses import unilseg_loss  # noqa: E402
from unilseg.model import build_model  # noqa: E402
from unilseg.train import run_training  # noqa: E402
from unilseg.train_config import TrainConfig  # noqa: E402
from unilseg.train_worker import read_metrics  # noqa: E402


def loader_rate(split: Path, tokenizer, batch: int, batches: int, workers: int) -> float:
    ds = TargetDataset([(split, 1.0)], tokenizer, 128, augment=AugmentConfig())
    it = iter(DataLoader(ds, batch_size=batch, num_workers=workers))
    next(it)  # worker start-up and the first shard are not timed
    t = time.perf_counter()
    for _ in itertools.islice(it, batches):
        pass
    return batch * batches / (time.perf_counter() - t)


def consume_rate(split: Path, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model("unilseg-tiny").train()
    ds = TargetDataset([(split, 1.0)], model.tokenizer, 128, augment=AugmentConfig())
    images, ids, masks = next(iter(DataLoader(ds, batch_size=batch)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = unilseg_loss(model(images, ids), masks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times[1:])


def ray_rate(split: Path, out: Path, workers: int, batch: int, steps: int) -> float:
    cfg = TrainConfig(
        preset="unilseg-tiny",
        data=[(str(split), 1.0)],
        out=str(out),
        workers=workers,
        steps=steps,
        batch_size=batch,
        checkpoint_every=steps,
        log_every=10,
        keep_checkpoints=1,
    )
    run_training(cfg)
    rates = [r["samples_per_s"] for r in read_metrics(out) if r["event"] == "report"]
    return statistics.median(rates[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16, help="global batch of the Ray runs")
    p.add_argument("--steps", type=int, default=60, help="steps of each Ray run")
    p.add_argument("--loader-batches", type=int, default=60)
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a redirected log
    torch.set_num_threads(1)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_shapes(tmp / "src", images=args.images, seed=0, size=128)
        convert("refcoco", tmp / "src", tmp / "out", "train", max_count=50, progress=False)
        split = tmp / "out" / "train"
        per_worker = args.batch_size // 2
        tokenizer = build_model("unilseg-tiny").tokenizer
        loader0 = loader_rate(split, tokenizer, per_worker, args.loader_batches, 0)
        loader1 = loader_rate(split, tokenizer, per_worker, args.loader_batches, 1)
        consume = consume_rate(split, per_worker, 10)
        print(f"loader in-process        {loader0:8.1f} samples/s")
        print(f"loader 1 worker process  {loader1:8.1f} samples/s")
        print(f"training consumes        {consume:8.1f} samples/s per worker (batch {per_worker}, 1 thread)")
        print(f"loader / consumption     {loader1 / consume:8.2f}x  (> 1: the loader is not the bottleneck)")
        one = ray_rate(split, tmp / "run1", 1, args.batch_size, args.steps)
        two = ray_rate(split, tmp / "run2", 2, args.batch_size, args.steps)
        print(f"ray train 1 worker       {one:8.1f} samples/s (global batch {args.batch_size})")
        print(f"ray train 2 workers      {two:8.1f} samples/s (global batch {args.batch_size})")
        print(f"2 workers / 1 worker     {two / one:8.2f}x")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
