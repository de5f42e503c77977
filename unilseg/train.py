"""Distributed training of UniLSeg with Ray Train (`TorchTrainer`, DDP; gloo on CPU).

    from unilseg.train import TrainConfig, run_training
    run_training(TrainConfig(preset="unilseg-tiny", data=[("data/synth", 1.0)], out="runs/tiny",
                             workers=2, steps=2000))

A run directory RUN holds:
  RUN/latest.pt                   the newest checkpoint (unilseg.checkpoint format: model,
                                  optimizer, step, config): what `unilseg predict/eval` read
  RUN/checkpoints/step-XXXXXX.pt  the last `keep_checkpoints` checkpoints
  RUN/metrics.jsonl               one line per report (rank 0) and per (re)start
  RUN/<name>/                     Ray Train's own run state and checkpoint copies

Resume order when a worker group starts: Ray's checkpoint (ray.train.get_checkpoint(), set
after a lost worker or for a rerun with the same name), else RUN/latest.pt, else `init`
(weights only, step 0; our checkpoint or the released UniLSeg-20 file), else random weights.
A run whose latest.pt already holds the requested step returns at once.

Every rank draws from an endless data stream (unilseg.data), so all ranks take exactly
`steps` steps and no rank waits in an all-reduce for one that ran out of data. The learning
rate is a pure function of the step (linear warm-up, cosine decay), so only the optimizer
state needs saving.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pt"
CKPT_DIR = "checkpoints"
METRICS = "metrics.jsonl"
RAY_CKPT_FILE = "model.pt"


@dataclass
class TrainConfig:
    """One training run (the public API the Prefect flows call).

    Attributes:
        preset (str | None): model preset name or JSON path; None = the config saved in `init`.
        data (list[tuple[str, float]]): (dataset or split dir, mixing weight) pairs.
        out (str): run directory RUN.
        workers (int): Ray Train workers (DDP ranks).
        gpus (bool): one GPU per worker (nccl) instead of CPU (gloo).
        steps (int): optimizer steps in total (a resumed run continues to this count).
        batch_size (int): global batch; each worker takes batch_size / workers (>= 2: BatchNorm).
        lr (float): peak AdamW learning rate.
        weight_decay (float): AdamW weight decay.
        warmup_steps (int): linear warm-up steps.
        min_lr_ratio (float): the cosine decays to lr * min_lr_ratio at `steps`.
        grad_clip (float): max gradient norm (0 = no clipping).
        aux_weight (float): weight of the auxiliary decoder-layer losses.
        bce_weight (float): weight of binary cross-entropy in every mask loss.
        dice_weight (float): weight of the Dice loss in every mask loss.
        checkpoint_every (int): steps between checkpoints (the last step is always saved).
        log_every (int): steps between metric reports.
        keep_checkpoints (int): step checkpoints kept in RUN/checkpoints and by Ray.
        init (str | None): checkpoint to start from when RUN has none (ours or the released one).
        seed (int): seed of weights, data order and augmentation.
        num_loader_workers (int): DataLoader worker processes per Ray worker.
        augment (dict | None): unilseg.data.AugmentConfig fields; None = no augmentation.
        shuffle_buffer (int): targets held for shuffling per reader.
        threads_per_worker (int): torch threads per Ray worker.
        niceness (int | None): OS priority of the workers; Ray starts them at 15, where they lose
            every core to ordinary processes on a shared machine. None keeps Ray's.
        max_failures (int): worker-group restarts Ray Train allows (FailureConfig).
        ray_address (str | None): Ray cluster to use (None: unilseg.ray_runtime default).
        name (str): Ray Train run name (its state lives in RUN/<name>).
        time_limit_s (float | None): stop and save once this much training time (counted across
            restarts, rank 0's clock) has passed; the cosine then follows elapsed / limit whenever
            that is ahead of step / steps, so a budgeted run still ends at the low learning rate.
        fail_at_step (int | None): TEST ONLY: the last rank exits abruptly before this step, once
            (a marker file in RUN records it), to exercise recovery.
    """

    preset: str | None = "unilseg-tiny"
    data: list = field(default_factory=list)
    out: str = "runs/train"
    workers: int = 1
    gpus: bool = False
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    aux_weight: float = 0.5
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    checkpoint_every: int = 200
    log_every: int = 10
    keep_checkpoints: int = 2
    init: str | None = None
    seed: int = 0
    num_loader_workers: int = 1
    augment: dict | None = field(default_factory=dict)
    shuffle_buffer: int = 256
    threads_per_worker: int = 1
    niceness: int | None = 0
    max_failures: int = 2
    ray_address: str | None = None
    name: str = "train"
    time_limit_s: float | None = None
    fail_at_step: int | None = None

    def __post_init__(self) -> None:
        self.data = [(str(p), float(w)) for p, w in self.data]
        if self.workers < 1 or self.steps < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("workers, steps, checkpoint_every and log_every must be >= 1")
        if self.batch_size % self.workers or self.batch_size // self.workers < 2:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of workers {self.workers} with at "
                             "least 2 per worker (BatchNorm in the head needs batch >= 2)")
        if self.preset is None and self.init is None:
            raise ValueError("give a preset, or an init checkpoint whose config to use")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of asdict; an unknown key fails loudly."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


def lr_at(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Learning rate of 1-based `step`: linear warm-up to cfg.lr, then cosine to lr * min_lr_ratio.

    `time_fraction` (elapsed / time limit) moves the cosine on when it is ahead of the steps.
    """
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    t = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_fraction)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step saved in one of our checkpoints (memory-mapped: weights are not read)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])


def read_metrics(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Lines of RUN/metrics.jsonl (reports and start events), oldest first."""
    path = Path(out) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _log_event(out: Path, record: dict[str, Any]) -> None:
    with open(out / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def _publish(src: Path, out: Path, step: int, keep: int) -> Path:
    """Copies a checkpoint to RUN/checkpoints/step-XXXXXX.pt and points RUN/latest.pt at it (atomic)."""
    ckpt_dir = out / CKPT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    dst = ckpt_dir / f"step-{step:06d}.pt"
    shutil.copyfile(src, dst.with_suffix(".tmp"))
    os.replace(dst.with_suffix(".tmp"), dst)
    tmp = out / (LATEST + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(dst, tmp)  # latest.pt shares the step file's bytes
    except OSError:
        shutil.copyfile(dst, tmp)
    os.replace(tmp, out / LATEST)
    for old in sorted(ckpt_dir.glob("step-*.pt"))[:-keep]:
        old.unlink()
    return dst


def _build_model(cfg: TrainConfig):
    """The model of cfg.preset, or of the config saved in cfg.init; returns (model, init kind)."""
    from unilseg.model import build_model
    from unilseg.model.loading import is_training_checkpoint

    if cfg.preset is not None:
        return build_model(cfg.preset)
    if not is_training_checkpoint(cfg.init):
        raise ValueError(f"{cfg.init} carries no config (the released file?): pass --preset")
    config = torch.load(cfg.init, map_location="cpu", weights_only=True, mmap=True)["config"]
    return build_model(config)


def _restore(cfg: TrainConfig, model, optimizer, ray_ckpt=None) -> tuple[int, str, dict[str, Any]]:
    """Loads the newest state (see the module docstring); returns (step, where from, saved extra).

    Args:
        ray_ckpt (ray.train.Checkpoint | None): ray.train.get_checkpoint() of this worker group.
    """
    from unilseg.checkpoint import load_checkpoint, load_released_checkpoint
    from unilseg.model.loading import is_training_checkpoint

    if ray_ckpt is not None:
        with ray_ckpt.as_directory() as d:
            loaded = load_checkpoint(Path(d) / RAY_CKPT_FILE, model, optimizer)
            return loaded.step, "ray", loaded.extra
    latest = Path(cfg.out) / LATEST
    if latest.is_file():
        loaded = load_checkpoint(latest, model, optimizer)
        return loaded.step, "latest", loaded.extra
    if cfg.init:
        if is_training_checkpoint(cfg.init):
            load_checkpoint(cfg.init, model)  # weights only: a fine-tune starts its own schedule
        else:
            load_released_checkpoint(model.module if hasattr(model, "module") else model, cfg.init)
        return 0, "init", {}
    return 0, "scratch", {}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function: build, restore, train to cfg.steps, checkpoint, report."""
    import cv2
    import ray.train
    import ray.train.torch
    from torch.utils.data import DataLoader

    from unilseg.checkpoint import save_checkpoint
    from unilseg.data import AugmentConfig, TargetDataset
    from unilseg.losses import unilseg_loss

    cfg = TrainConfig.from_dict(config)
    if cfg.niceness is not None and os.getpriority(os.PRIO_PROCESS, 0) != cfg.niceness:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, cfg.niceness)  # DataLoader workers fork from here: inherited
        except OSError as e:  # lowering niceness needs CAP_SYS_NICE
            print(f"[unilseg train] cannot set niceness {cfg.niceness}: {e}", flush=True)
    torch.set_num_threads(cfg.threads_per_worker)
    cv2.setNumThreads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    model = _build_model(cfg)
    tokenizer, size = model.tokenizer, model.config.input_size
    model = ray.train.torch.prepare_model(model)  # moves to the device; DDP when world > 1
    device = ray.train.torch.get_device()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, source, extra = _restore(cfg, model, optimizer, ray.train.get_checkpoint())
    # a run that finished by its time budget continues only if asked for a longer budget
    trained_s = float(extra.get("train_seconds", 0.0)) if source in ("ray", "latest") else 0.0
    if rank == 0:
        _log_event(out, {"event": "start", "step": start, "from": source, "world_size": world, "time": time.time(),
                         "niceness": os.getpriority(os.PRIO_PROCESS, 0)})
        print(f"[unilseg train] rank 0 of {world}: starting at step {start} ({source}), target {cfg.steps}",
              flush=True)

    per_worker = cfg.batch_size // world
    dataset = TargetDataset(cfg.data, tokenizer, size, seed=cfg.seed * 100_003 + start, rank=rank, world_size=world,
                            augment=AugmentConfig(**cfg.augment) if cfg.augment is not None else None,
                            shuffle_buffer=cfg.shuffle_buffer)
    loader = DataLoader(dataset, batch_size=per_worker, num_workers=cfg.num_loader_workers,
                        pin_memory=cfg.gpus, prefetch_factor=4 if cfg.num_loader_workers else None)
    batches = iter(loader)
    model.train()
    sums: dict[str, float] = {"loss": 0.0, "bce": 0.0, "dice": 0.0}
    n, t0 = 0, time.perf_counter()
    t_begin = t0
    for step in range(start + 1, cfg.steps + 1):
        if cfg.fail_at_step == step and rank == world - 1:
            marker = out / f".injected-failure-step-{step}"
            if not marker.exists():
                marker.write_text(f"rank {rank} exited before step {step}\n")
                os._exit(1)  # test hook: an abrupt worker loss, as a killed process
        images, ids, masks = next(batches)
        elapsed = trained_s + time.perf_counter() - t_begin
        time_fraction, out_of_time = 0.0, False
        if cfg.time_limit_s:
            clock = torch.tensor([elapsed], dtype=torch.float64)
            if world > 1:  # every rank must stop at the same step: rank 0's clock decides
                torch.distributed.broadcast(clock, src=0)
            elapsed = float(clock)
            time_fraction, out_of_time = elapsed / cfg.time_limit_s, elapsed >= cfg.time_limit_s
        lr = lr_at(step, cfg, time_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        outputs = model(images.to(device, non_blocking=True), ids.to(device, non_blocking=True))
        losses = unilseg_loss(outputs, masks.to(device, non_blocking=True), aux_weight=cfg.aux_weight,
                              bce_weight=cfg.bce_weight, dice_weight=cfg.dice_weight)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        for k in sums:
            sums[k] += float(losses[k].detach())
        n += 1
        save = step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time
        if not (save or step % cfg.log_every == 0):
            continue
        dt = time.perf_counter() - t0
        metrics = {"step": step, "lr": lr, "train_seconds": elapsed, "samples_per_s": n * per_worker * world / dt,
                   **{k: v / n for k, v in sums.items()}}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if save and rank == 0:
                path = save_checkpoint(Path(tmp) / RAY_CKPT_FILE, model, optimizer, step,
                                       extra={"world_size": world, "batch_size": cfg.batch_size, "lr": cfg.lr,
                                              "train_seconds": elapsed, "time_limit_s": cfg.time_limit_s or 0.0,
                                              "out_of_time": out_of_time})
                _publish(path, out, step, cfg.keep_checkpoints)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)  # a barrier: every rank calls it
        if rank == 0:
            _log_event(out, {"event": "report", **metrics})
            print(f"[unilseg train] step {step}/{cfg.steps} loss {metrics['loss']:.4f} (bce {metrics['bce']:.4f} "
                  f"dice {metrics['dice']:.4f}) lr {lr:.2e} {metrics['samples_per_s']:.1f} samples/s"
                  + (" [checkpoint]" if save else ""), flush=True)
        sums = dict.fromkeys(sums, 0.0)
        n, t0 = 0, time.perf_counter()
        if out_of_time:
            if rank == 0:
                print(f"[unilseg train] time budget {cfg.time_limit_s:.0f} s used: stopped at step {step}", flush=True)
            break


def _finished(latest: Path, cfg: TrainConfig) -> bool:
    """latest.pt holds the requested step, or ended the same (or a larger) time budget."""
    ckpt = torch.load(latest, map_location="cpu", weights_only=True, mmap=True)
    extra = ckpt.get("extra") or {}
    budget_done = bool(extra.get("out_of_time")) and cfg.time_limit_s is not None and \
        float(extra.get("time_limit_s", 0.0)) >= cfg.time_limit_s
    return int(ckpt["step"]) >= cfg.steps or budget_done


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Trains (or resumes) to cfg.steps with Ray Train.

    Returns:
        dict: "checkpoint" (RUN/latest.pt), "step" (its step), "metrics" (the last report).

    Raises:
        FileNotFoundError: a data path that is not a shard split or dataset.
        ray.train.TrainingFailedError: workers failed more than cfg.max_failures times.
    """
    from unilseg.data import resolve_split_dir

    out = Path(cfg.out).resolve()
    latest = out / LATEST
    if latest.is_file() and _finished(latest, cfg):
        reports = [r for r in read_metrics(out) if r.get("event") == "report"]
        metrics = {k: v for k, v in reports[-1].items() if k != "event"} if reports else {}
        return {"checkpoint": str(latest), "step": checkpoint_step(latest), "metrics": metrics}
    if not cfg.data:
        raise ValueError("no training data: give at least one --data DST[:WEIGHT]")
    if cfg.init and not Path(cfg.init).is_file():
        raise FileNotFoundError(f"init checkpoint {cfg.init} does not exist")
    if cfg.preset is None:
        from unilseg.model.loading import is_training_checkpoint

        if not is_training_checkpoint(cfg.init):
            raise ValueError(f"{cfg.init} carries no model config (the released file?): give the preset "
                             "(unilseg-swin-b for UniLSeg20_no_finetune.pth)")
    resolved = [(str(resolve_split_dir(p).resolve()), w) for p, w in cfg.data]
    out.mkdir(parents=True, exist_ok=True)
    worker_cfg = asdict(cfg) | {"data": resolved, "out": str(out),
                                "init": str(Path(cfg.init).resolve()) if cfg.init else None}

    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from unilseg.loopback_ddp import LoopbackTorchConfig  # DDP's rendezvous store on 127.0.0.1

    from unilseg.ray_runtime import ensure_ray

    ensure_ray(cfg.ray_address)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=worker_cfg,
        torch_config=LoopbackTorchConfig(backend="nccl" if cfg.gpus else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpus,
                                     resources_per_worker={"CPU": 1, **({"GPU": 1} if cfg.gpus else {})}),
        run_config=RunConfig(name=cfg.name, storage_path=str(out),
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints)),
    )
    result = trainer.fit()
    return {"checkpoint": str(latest), "step": checkpoint_step(latest), "metrics": dict(result.metrics or {})}
