"""Distributed training of UniLSeg with Ray Train (`TorchTrainer`, DDP; gloo on CPU).

    from unilseg.train import run_training
    from unilseg.train_config import TrainConfig
    run_training(TrainConfig(data=[("data/synth", 1.0)], out="runs/tiny", workers=2, steps=2000))

The driver checks everything it can before Ray starts (data, preset, init checkpoint; every
shard listed in dataset.json present with its size: shards.integrity.check_split), so a wrong
setting or a damaged split is a one-line error rather than a worker failure retried by Ray
Train; the workers run `unilseg.train_worker` (set up, restore, step, checkpoint).

Ray Train 2.60 retries every worker error up to FailureConfig.max_failures times and offers no
way to mark one as permanent (its failure policy is not pluggable). What only reading can find
(a shard whose bytes changed but not its size, a member with an odd name) a worker raises as a
UniLSegError; a Ray Train callback (StopOnUserError) turns that into a controller error, which
Ray Train does not retry, and the driver raises the worker's own one-line error. A run whose
RUN/latest.pt already holds the requested step (or ended the same time budget) returns at
once, without starting Ray Train. Data, RUN and the init checkpoint may be local paths or
fsspec URLs (shards.storage); Ray Train keeps its own state in RUN through the same filesystem.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2.api.callback import UserCallback
from ray.train.v2.api.exceptions import ControllerError, TrainingFailedError, WorkerGroupError

from common.errors import MissingInputError, UniLSegError
from common.ray_runtime import ensure_ray
from shards import storage
from shards.integrity import check_split
from shards.layout import resolve_split_dir
from unilseg.checkpoint import read_checkpoint_file
from unilseg.loopback_ddp import LoopbackTorchConfig  # DDP's rendezvous store on 127.0.0.1
from unilseg.model.loading import model_config
from unilseg.run_lock import driver_lock
from unilseg.train_checkpoints import LATEST
from unilseg.train_config import TrainConfig
from unilseg.train_progress import LOSS_PNG, Echo, draw_loss_curve, follow
from unilseg.train_worker import METRICS, StepHook, read_metrics, train_loop_per_worker


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step saved in one of our checkpoints (memory-mapped: weights are not read)."""
    return int(read_checkpoint_file(path, mmap=True)["step"])


def _finished(latest: Path | str, cfg: TrainConfig) -> bool:
    """latest.pt holds the requested step, or ended the same (or a larger) time budget."""
    ckpt = read_checkpoint_file(latest, mmap=True)
    extra = ckpt.get("extra") or {}
    budget_done = (
        bool(extra.get("out_of_time"))
        and cfg.time_limit_s is not None
        and float(extra.get("time_limit_s", 0.0)) >= cfg.time_limit_s
    )
    return int(ckpt["step"]) >= cfg.steps or budget_done


def _checked(cfg: TrainConfig) -> TrainConfig:
    """The config the workers get: data resolved to split dirs, local paths absolute (URLs
    kept), the caller's niceness filled in; every check that needs no Ray done here."""
    if not cfg.data:
        raise UniLSegError("no training data: give at least one --data DST[:WEIGHT]")
    if cfg.init and not storage.isfile(cfg.init):
        raise MissingInputError(f"init checkpoint {cfg.init} does not exist")
    model_config(cfg.preset, cfg.init)  # an unknown preset or a config-less init fails now
    if cfg.init:
        read_checkpoint_file(cfg.init, mmap=True)  # so does a file that is no checkpoint
    resolved = [(storage.absolute(resolve_split_dir(p)), w) for p, w in cfg.data]
    for split, _ in resolved:
        check_split(split)  # a missing or resized shard, a missing manifest: before Ray starts
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if cfg.niceness is None else cfg.niceness
    return dataclasses.replace(
        cfg,
        data=resolved,
        out=storage.absolute(cfg.out),
        niceness=niceness,
        init=storage.absolute(cfg.init) if cfg.init else None,
    )


class StopOnUserError(UserCallback):
    """Runs in Ray Train's controller: a worker that raised a UniLSegError (bad data, such as a
    damaged shard, or a bad setting) fails the run at once instead of being restarted, since
    the same data would fail the same way. Raising here is what makes the controller stop: Ray
    Train treats an error in a callback as a controller error, which it does not retry."""

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        for rank in sorted(worker_exceptions):
            error = _user_error(worker_exceptions[rank])
            if error is not None:
                raise error


def _user_error(e: BaseException) -> UniLSegError | None:
    """The UniLSegError behind a worker's (or a training run's) failure, if that is what it was."""
    if isinstance(e, ControllerError):
        return _user_error(e.controller_failure)
    if isinstance(e, WorkerGroupError):
        return next((u for u in map(_user_error, e.worker_failures.values()) if u is not None), None)
    base = getattr(e, "_base_exc", e)  # Ray Train wraps a worker's exception with its traceback
    return base if isinstance(base, UniLSegError) else None


def _last_report(out: str) -> dict[str, Any]:
    reports = [r for r in read_metrics(out) if r.get("event") == "report"]
    return {k: v for k, v in reports[-1].items() if k not in ("event", "steps", "checkpoint")} if reports else {}


def run_training(
    cfg: TrainConfig,
    step_hook: StepHook | None = None,
    echo: Echo | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) to cfg.steps with Ray Train.

    Args:
        cfg (TrainConfig): the run; its data, out (RUN) and init may be local paths, fsspec
            URLs or shards.storage.Locations (URLs with their fsspec options; they reach the
            workers pickled and show only their URLs) (checkpoints, metrics and Ray Train's
            state are then written there).
        step_hook (StepHook | None): called in every worker before every step (tests use it to
            kill a worker).
        echo (Echo | None): called with one line per (re)start, logged step and worker warning
            (unilseg.train_progress), from a helper thread; None shows nothing.

    Returns:
        dict: "checkpoint" (RUN/latest.pt), "step" (its step), "metrics" (the last report),
        "loss_curve" (RUN/loss.png, or None before any report).

    Raises:
        UniLSegError: bad settings, data or checkpoints (before Ray starts).
        RunBusyError: another `unilseg train` runs on the same RUN.
        UniLSegError: a worker found bad data (a damaged shard) or a bad setting; not retried.
        ray.train.TrainingFailedError: workers failed more than cfg.max_failures times.
    """
    out = storage.absolute(cfg.out)
    latest = storage.join(out, LATEST)
    checked = not storage.isfile(latest)
    if checked:  # a new run: bad settings fail before RUN is created
        cfg = _checked(cfg)
    storage.makedirs(out)
    with driver_lock(out):  # one driver per RUN; an earlier run's workers are gone before we read its state
        if storage.isfile(latest) and _finished(latest, cfg):
            curve = storage.join(out, LOSS_PNG)
            return {
                "checkpoint": latest,
                "step": checkpoint_step(latest),
                "metrics": _last_report(out),
                "loss_curve": curve if storage.isfile(curve) else None,
            }
        if not checked:
            cfg = _checked(cfg)
        metrics, curve = _fit(cfg, out, step_hook, echo)
    return {"checkpoint": latest, "step": checkpoint_step(latest), "metrics": metrics, "loss_curve": curve}


def _fit(
    cfg: TrainConfig, out: str, step_hook: StepHook | None, echo: Echo | None
) -> tuple[dict[str, Any], str | None]:
    """Runs Ray Train while the run's events are echoed; returns the last report's metrics and
    the loss curve (drawn even when training fails). A worker's user error is raised as itself."""
    ensure_ray(cfg.ray_address)
    with follow(storage.join(out, METRICS), echo):
        try:
            result = _trainer(cfg, out, step_hook).fit()
        except TrainingFailedError as e:
            error = _user_error(e)
            if error is None:
                raise
            raise error from None
        finally:
            curve = draw_loss_curve(read_metrics(out), storage.join(out, LOSS_PNG))
    return dict(result.metrics or {}), curve


def _trainer(cfg: TrainConfig, out: str, step_hook: StepHook | None) -> TorchTrainer:
    # Ray Train keeps its state in RUN/<name> through the same fsspec filesystem as ours
    ray_fs, ray_path = storage.arrow_filesystem(out)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg.to_dict(),
            "step_hook": step_hook,
        },
        torch_config=LoopbackTorchConfig(backend="nccl" if cfg.gpus else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.gpus,
            resources_per_worker={"CPU": 1, **({"GPU": 1} if cfg.gpus else {})},
        ),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=ray_path,
            storage_filesystem=ray_fs,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            callbacks=[StopOnUserError()],
        ),
    )
