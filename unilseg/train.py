"""Distributed training of UniLSeg with Ray Train (`TorchTrainer`, DDP; gloo on CPU).

    from unilseg.train import run_training
    from unilseg.train_config import TrainConfig
    run_training(TrainConfig(data=[("data/synth", 1.0)], out="runs/tiny", workers=2, steps=2000))

The driver checks everything it can before Ray starts (data, preset, init checkpoint), so a
wrong setting is a one-line error rather than a worker failure retried by Ray Train; the
workers run `unilseg.train_worker` (set up, restore, step, checkpoint). A run whose
RUN/latest.pt already holds the requested step (or ended the same time budget) returns at
once, without starting Ray Train.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from shards import storage
from shards.errors import MissingInputError, UniLSegError
from unilseg.checkpoint import read_checkpoint_file
from shards.layout import resolve_split_dir
from unilseg.loopback_ddp import LoopbackTorchConfig  # DDP's rendezvous store on 127.0.0.1
from unilseg.model.loading import model_config
from unilseg.ray_runtime import ensure_ray
from unilseg.train_config import TrainConfig
from unilseg.train_worker import LATEST, StepHook, read_metrics, train_loop_per_worker


def checkpoint_step(path: str | os.PathLike, storage_options: storage.StorageOptions = None) -> int:
    """The step saved in one of our checkpoints (memory-mapped: weights are not read)."""
    return int(read_checkpoint_file(path, mmap=True, storage_options=storage_options)["step"])


def _finished(latest: Path | str, cfg: TrainConfig, storage_options: storage.StorageOptions = None) -> bool:
    """latest.pt holds the requested step, or ended the same (or a larger) time budget."""
    ckpt = read_checkpoint_file(latest, mmap=True, storage_options=storage_options)
    extra = ckpt.get("extra") or {}
    budget_done = bool(extra.get("out_of_time")) and cfg.time_limit_s is not None and \
        float(extra.get("time_limit_s", 0.0)) >= cfg.time_limit_s
    return int(ckpt["step"]) >= cfg.steps or budget_done


def _checked(cfg: TrainConfig, storage_options: storage.StorageOptions = None) -> TrainConfig:
    """The config the workers get: data resolved to split dirs, local paths absolute (URLs
    kept), the caller's niceness filled in; every check that needs no Ray done here."""
    if not cfg.data:
        raise UniLSegError("no training data: give at least one --data DST[:WEIGHT]")
    if cfg.init and not storage.isfile(cfg.init, storage_options):
        raise MissingInputError(f"init checkpoint {cfg.init} does not exist")
    model_config(cfg.preset, cfg.init, storage_options)  # an unknown preset or a config-less init fails now
    resolved = [(storage.absolute(resolve_split_dir(p, storage_options=storage_options)), w) for p, w in cfg.data]
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if cfg.niceness is None else cfg.niceness
    return dataclasses.replace(cfg, data=resolved, out=storage.absolute(cfg.out), niceness=niceness,
                               init=storage.absolute(cfg.init) if cfg.init else None)


def run_training(cfg: TrainConfig, step_hook: StepHook | None = None,
                 storage_options: storage.StorageOptions = None) -> dict[str, Any]:
    """Trains (or resumes) to cfg.steps with Ray Train.

    Args:
        cfg (TrainConfig): the run; its data, out (RUN) and init may be local paths or fsspec
            URLs (checkpoints, metrics and Ray Train's state are then written there).
        step_hook (StepHook | None): called in every worker before every step (tests use it to
            kill a worker).
        storage_options (dict | None): fsspec options for URLs (handed to the workers masked:
            Ray Train shows its train_loop_config; never logged).

    Returns:
        dict: "checkpoint" (RUN/latest.pt), "step" (its step), "metrics" (the last report).

    Raises:
        UniLSegError: bad settings, data or checkpoints (before Ray starts).
        ray.train.TrainingFailedError: workers failed more than cfg.max_failures times.
    """
    so = storage_options
    out = storage.absolute(cfg.out)
    latest = storage.join(out, LATEST)
    if storage.isfile(latest, so) and _finished(latest, cfg, so):
        reports = [r for r in read_metrics(out, so) if r.get("event") == "report"]
        metrics = {k: v for k, v in reports[-1].items() if k != "event"} if reports else {}
        return {"checkpoint": str(latest), "step": checkpoint_step(latest, so), "metrics": metrics}
    cfg = _checked(cfg, so)
    storage.makedirs(out, so)
    ensure_ray(cfg.ray_address)
    # Ray Train keeps its state in RUN/<name> through the same fsspec filesystem as ours
    ray_fs, ray_path = storage.arrow_filesystem(out, so)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": cfg.to_dict(), "step_hook": step_hook, "storage_options": storage.Masked(so)},
        torch_config=LoopbackTorchConfig(backend="nccl" if cfg.gpus else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpus,
                                     resources_per_worker={"CPU": 1, **({"GPU": 1} if cfg.gpus else {})}),
        run_config=RunConfig(name=cfg.name, storage_path=ray_path, storage_filesystem=ray_fs,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints)),
    )
    result = trainer.fit()
    return {"checkpoint": str(latest), "step": checkpoint_step(latest, so), "metrics": dict(result.metrics or {})}
