"""What each Ray Train worker runs: set up, restore, step, checkpoint and report.

A run directory RUN holds:
  RUN/latest.pt                   the newest checkpoint (unilseg.checkpoint format: model,
                                  optimizer, step, config): what `unilseg predict/eval` read
  RUN/checkpoints/step-XXXXXX.pt  the last `keep_checkpoints` checkpoints
  RUN/metrics.jsonl               one line per report and per (re)start (rank 0), per warning
                                  (any rank; the driver echoes them all: unilseg.train_progress)
  RUN/loss.png                    the loss curve (drawn by the driver)
  RUN/<name>/                     Ray Train's own run state and checkpoint copies

RUN may be a local path or an fsspec URL (s3://...): everything above goes through
shards.storage (a checkpoint is written locally, then published in one step).

Checkpoints, where they go and which one a worker resumes from: ``unilseg.train_checkpoints``.
Resume order when a worker group starts: Ray's checkpoint (ray.train.get_checkpoint(), set
after a lost worker or for a rerun with the same name) unless RUN/latest.pt holds a later
step, else RUN/latest.pt, else `init` (weights only, step 0; our checkpoint or the released
UniLSeg-20 file), else random weights.

Every rank draws from an endless data stream (unilseg.data), so all ranks take exactly
`steps` steps and no rank waits in an all-reduce for one that ran out of data. The learning
rate is a pure function of the step (linear warm-up, cosine decay), so only the optimizer
state needs saving.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import ray.train
import ray.train.torch
import torch
from torch.utils.data import DataLoader

from common.errors import UniLSegError
from common.processes import die_with_parent
from common.ray_runtime import set_niceness
from shards import storage
from shards.integrity import worker_message
from unilseg.checkpoint import save_checkpoint
from unilseg.data.augment import AugmentConfig
from unilseg.data.dataset import SkipCounter, TargetDataset
from unilseg.losses import unilseg_loss
from unilseg.model import UniLSeg, build_model
from unilseg.model.loading import model_config
from unilseg.run_lock import WorkerGuard
from unilseg.train_checkpoints import RAY_CKPT_FILE, publish_checkpoint, restore
from unilseg.train_config import TrainConfig

METRICS = "metrics.jsonl"
# called as hook(step, rank, world_size, run_dir) before every step (tests inject faults with it)
StepHook = Callable[[int, int, int, Path], None]


def lr_at(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Learning rate of 1-based `step`: linear warm-up to cfg.lr, then cosine to lr * min_lr_ratio.

    `time_fraction` (elapsed / time limit) moves the cosine on when it is ahead of the steps.
    """
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    t = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_fraction)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def read_metrics(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Lines of RUN/metrics.jsonl (reports, start and warning events), oldest first; a line cut
    short by a killed process is skipped."""
    path = storage.join(out, METRICS)
    try:
        text = storage.read_bytes(path).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _log_event(out: Path | str, record: dict[str, Any]) -> None:
    # local: one short line per write, so appends from several processes stay whole; an object
    # store rewrites the object (shards.storage.append_text), so only rank 0 logs there
    storage.append_text(storage.join(out, METRICS), json.dumps(record) + "\n")


class _WarningsToEvents(logging.Handler):
    """Our loggers' warnings in a worker (and its DataLoader processes, forked from it) become
    "warning" events in RUN/metrics.jsonl, which the driver shows: Ray's forwarding of worker
    output is off unless asked for. Only for a local RUN: appends from several processes to an
    object would overwrite each other, so with RUN at a URL warnings show with --verbose."""

    def __init__(self, out: Path, rank: int):
        super().__init__(logging.WARNING)
        self.out, self.rank = out, rank

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _log_event(
                self.out,
                {
                    "event": "warning",
                    "rank": self.rank,
                    "logger": record.name,
                    "message": record.getMessage(),
                    "time": record.created,
                },
            )
        except Exception:  # noqa: BLE001 - logging must never fail the step
            self.handleError(record)


def _forward_warnings(out: Path, rank: int) -> None:
    for name in ("unilseg", "shards"):
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if isinstance(h, _WarningsToEvents)]:
            logger.removeHandler(h)
        logger.addHandler(_WarningsToEvents(out, rank))


@dataclass
class WorkerState:
    """Everything one worker holds between steps."""

    cfg: TrainConfig
    rank: int
    world: int
    out: Path | str  # RUN: a Path when local, else its URL
    model: torch.nn.Module  # DDP-wrapped when world > 1
    optimizer: torch.optim.Optimizer
    device: torch.device
    batches: Iterator
    start: int  # the step restored from
    trained_s: float  # training seconds before this (re)start
    guard: WorkerGuard  # the run's workers lock; ends the process if the driver's Ray dies
    skips: SkipCounter  # targets this rank's data stream read and skipped as broken (since this start)
    t_begin: float = field(default_factory=time.perf_counter)
    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "bce": 0.0, "dice": 0.0})
    n: int = 0  # steps summed in `sums`
    t_window: float = field(default_factory=time.perf_counter)

    @property
    def per_worker(self) -> int:
        return self.cfg.batch_size // self.world


def setup(cfg: TrainConfig) -> WorkerState:
    """Builds the model, optimizer and data stream of this rank and restores the newest state."""
    set_niceness(cfg.niceness)  # DataLoader workers fork from here: inherited
    torch.set_num_threads(cfg.threads_per_worker)
    cv2.setNumThreads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out = Path(cfg.out) if storage.is_local(cfg.out) else cfg.out
    if isinstance(out, Path):
        _forward_warnings(out, rank)
    torch.manual_seed(cfg.seed)
    model: UniLSeg = build_model(model_config(cfg.preset, cfg.init))
    tokenizer, size = model.tokenizer, model.config.input_size
    wrapped = ray.train.torch.prepare_model(model)  # moves to the device; DDP when world > 1
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, source, extra = restore(cfg, wrapped, optimizer, ray.train.get_checkpoint())
    # a run that finished by its time budget continues only if asked for a longer budget
    trained_s = float(extra.get("train_seconds", 0.0)) if source in ("ray", "latest") else 0.0
    if rank == 0:
        _log_start(out, start, source, world, cfg.steps)
    dataset, loader = _data(cfg, tokenizer, size, start, rank, world)
    wrapped.train()
    batches = iter(loader)  # DataLoader processes fork here: before the guard opens its lock file
    return WorkerState(
        cfg,
        rank,
        world,
        out,
        wrapped,
        optimizer,
        ray.train.torch.get_device(),
        batches,
        start,
        trained_s,
        WorkerGuard(out),
        dataset.skips,
    )


def _log_start(out: Path | str, start: int, source: str, world: int, target: int) -> None:
    """The "start" event of a (re)start in RUN/metrics.jsonl (rank 0)."""
    _log_event(
        out,
        {
            "event": "start",
            "step": start,
            "from": source,
            "world_size": world,
            "time": time.time(),
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            "target": target,
        },
    )


def _data(
    cfg: TrainConfig, tokenizer: Any, size: int, start: int, rank: int, world: int
) -> tuple[TargetDataset, DataLoader]:
    """This rank's endless data stream, seeded by the step it starts from, and its DataLoader."""
    dataset = TargetDataset(
        cfg.data,
        tokenizer,
        size,
        seed=cfg.seed * 100_003 + start,
        rank=rank,
        world_size=world,
        augment=AugmentConfig(**cfg.augment) if cfg.augment is not None else None,
        shuffle_buffer=cfg.shuffle_buffer,
        max_skipped_fraction=cfg.max_skipped_fraction,
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size // world,
        num_workers=cfg.num_loader_workers,
        pin_memory=cfg.gpus,
        prefetch_factor=4 if cfg.num_loader_workers else None,
        worker_init_fn=die_with_parent,
    )
    return dataset, loader


def clock(state: WorkerState) -> tuple[float, float, bool]:
    """(elapsed training seconds, fraction of the time budget, budget used); rank 0's clock decides."""
    cfg = state.cfg
    elapsed = state.trained_s + time.perf_counter() - state.t_begin
    if not cfg.time_limit_s:
        return elapsed, 0.0, False
    t = torch.tensor([elapsed], dtype=torch.float64)
    if state.world > 1:  # every rank must stop at the same step
        torch.distributed.broadcast(t, src=0)
    elapsed = float(t)
    return elapsed, elapsed / cfg.time_limit_s, elapsed >= cfg.time_limit_s


def train_step(state: WorkerState, step: int, lr: float) -> None:
    """One optimizer step on the next batch; losses are summed into state.sums."""
    try:
        images, ids, masks = next(state.batches)
    except UniLSegError as e:  # a damaged shard: torch's DataLoader re-raises it with a traceback for a message
        raise type(e)(worker_message(e)) from None
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    dev = state.device
    outputs = state.model(images.to(dev, non_blocking=True), ids.to(dev, non_blocking=True))
    losses = unilseg_loss(
        outputs,
        masks.to(dev, non_blocking=True),
        aux_weight=state.cfg.aux_weight,
        bce_weight=state.cfg.bce_weight,
        dice_weight=state.cfg.dice_weight,
    )
    state.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if state.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), state.cfg.grad_clip)
    state.optimizer.step()
    for k in state.sums:
        state.sums[k] += float(losses[k].detach())
    state.n += 1


def skip_totals(state: WorkerState) -> tuple[int, int]:
    """(targets read, targets skipped as broken) by every rank's data stream since this start.

    A collective when world > 1: every rank calls it at the same step (in `report`). The
    stream runs a few batches ahead of the step, so "read" is a little ahead of "trained on".
    """
    counts = torch.tensor(state.skips.counts(), dtype=torch.int64, device=state.device)
    if state.world > 1:
        torch.distributed.all_reduce(counts)
    read, skipped = counts.tolist()
    return int(read), int(skipped)


def report(state: WorkerState, step: int, lr: float, elapsed: float, save: bool, out_of_time: bool) -> None:
    """Reports the window's mean losses and the broken targets skipped so far to Ray Train (a
    barrier: every rank calls it); rank 0 also saves and publishes a checkpoint when `save`,
    and logs the line."""
    cfg, per_worker = state.cfg, state.per_worker
    dt = time.perf_counter() - state.t_window
    read, skipped = skip_totals(state)
    metrics = {
        "step": step,
        "lr": lr,
        "train_seconds": elapsed,
        "samples_per_s": state.n * per_worker * state.world / dt,
        **{k: v / state.n for k, v in state.sums.items()},
        "targets_read": read,
        "targets_skipped": skipped,
    }
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if save and state.rank == 0:
            path = save_checkpoint(
                Path(tmp) / RAY_CKPT_FILE,
                state.model,
                state.optimizer,
                step,
                extra={
                    "world_size": state.world,
                    "batch_size": cfg.batch_size,
                    "lr": cfg.lr,
                    "train_seconds": elapsed,
                    "time_limit_s": cfg.time_limit_s or 0.0,
                    "out_of_time": out_of_time,
                },
            )
            state.guard.exit_if_orphaned()  # a killed driver's worker never publishes latest.pt
            publish_checkpoint(path, state.out, step, cfg.keep_checkpoints)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)
    if state.rank == 0:
        _log_event(state.out, {"event": "report", **metrics, "steps": cfg.steps, "checkpoint": save})
    state.sums = dict.fromkeys(state.sums, 0.0)
    state.n, state.t_window = 0, time.perf_counter()


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train worker function: set up, then step to cfg.steps, reporting and checkpointing.

    Args:
        loop_config (dict): {"config": TrainConfig as a dict (its locations are
            shards.storage.Locations: they carry their options and show only their URLs),
            "step_hook": StepHook | None}.
    """
    cfg = TrainConfig.from_dict(loop_config["config"])
    hook: StepHook | None = loop_config.get("step_hook")
    state = setup(cfg)
    try:
        _steps(state, cfg, hook)
    finally:
        state.guard.release()


def _steps(state: WorkerState, cfg: TrainConfig, hook: StepHook | None) -> None:
    """Steps from the restored one to cfg.steps (or until the time budget is used)."""
    for step in range(state.start + 1, cfg.steps + 1):
        if hook is not None:
            hook(step, state.rank, state.world, state.out)
        elapsed, time_fraction, out_of_time = clock(state)
        lr = lr_at(step, cfg, time_fraction)
        train_step(state, step, lr)
        save = step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time
        if save or step % cfg.log_every == 0:
            report(state, step, lr, elapsed, save, out_of_time)
        if out_of_time:
            if state.rank == 0:
                _log_event(
                    state.out,
                    {"event": "out_of_time", "step": step, "time_limit_s": cfg.time_limit_s},
                )
            break
