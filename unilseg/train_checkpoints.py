"""A training run's checkpoints: published into RUN, and the newest one restored.

    RUN/latest.pt                   the newest checkpoint (unilseg.checkpoint format: model,
                                    optimizer, step, config): what `unilseg predict/eval` read
    RUN/checkpoints/step-XXXXXX.pt  the last `keep_checkpoints` checkpoints
    RUN/<name>/.../model.pt         Ray Train's copy of each reported checkpoint

RUN may be a local path or an fsspec URL; everything goes through shards.storage, and each
file appears complete or not at all. Resume order (``restore``): Ray's checkpoint unless
RUN/latest.pt holds a later step, else RUN/latest.pt, else ``init`` (weights only, step 0),
else random weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from shards import storage
from unilseg.checkpoint import load_checkpoint, load_released_checkpoint, read_checkpoint_file
from unilseg.model.loading import is_training_checkpoint
from unilseg.train_config import TrainConfig

LATEST = "latest.pt"
CKPT_DIR = "checkpoints"
RAY_CKPT_FILE = "model.pt"


def publish_checkpoint(src: Path, out: Path | str, step: int, keep: int) -> Path | str:
    """Copies a checkpoint to RUN/checkpoints/step-XXXXXX.pt and points RUN/latest.pt at it; each
    appears complete or not at all (shards.storage: rename, or one upload / store-side copy)."""
    ckpt_dir = storage.join(out, CKPT_DIR)
    storage.makedirs(ckpt_dir)
    dst = storage.join(ckpt_dir, f"step-{step:06d}.pt")
    storage.put_file(src, dst)
    storage.copy(dst, storage.join(out, LATEST))  # local: latest.pt shares the step file's bytes
    steps = [n for n in storage.listdir(ckpt_dir) if n.startswith("step-") and n.endswith(".pt")]
    for old in sorted(steps)[:-keep]:
        storage.remove(storage.join(ckpt_dir, old))
    return dst


def ray_checkpoint_file(ray_ckpt: Any, run: str | os.PathLike) -> str:
    """The location of the step file in Ray Train's checkpoint, read straight from RUN's storage.

    Never through ``Checkpoint.as_directory()`` / ``to_directory()``: for a remote checkpoint
    those download into one temporary directory per node named after the checkpoint, and a
    worker arriving after another finished downloads again over the same files while the
    first reads them (ray-project/ray#48726: "model.pt: the file is truncated" on resume from
    S3). Ray Train's state lives in RUN's own filesystem (unilseg.train hands it RUN's fsspec
    filesystem), so the file has a location of ours; a remote one is fetched by
    shards.storage.local_copy, whose cached copies are written under unique names and renamed
    into place, never rewritten under a reader.
    """
    return storage.same_filesystem(run, f"{ray_ckpt.path.rstrip('/')}/{RAY_CKPT_FILE}")


def restore(
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ray_ckpt: Any = None,
) -> tuple[int, str, dict[str, Any]]:
    """Loads the newest state (see the module docstring); returns (step, where from, saved extra).

    Args:
        ray_ckpt (ray.train.Checkpoint | None): ray.train.get_checkpoint() of this worker group.
    """
    latest = storage.join(cfg.out, LATEST)
    has_latest = storage.isfile(latest)
    latest_step = int(read_checkpoint_file(latest, mmap=True)["step"]) if has_latest else -1
    if ray_ckpt is not None:
        path = ray_checkpoint_file(ray_ckpt, cfg.out)
        # a driver killed after rank 0 published latest.pt, before Ray Train registered the
        # same step, leaves latest.pt ahead: the newer one wins
        if int(read_checkpoint_file(path, mmap=True)["step"]) >= latest_step:
            loaded = load_checkpoint(path, model, optimizer)
            return loaded.step, "ray", loaded.extra
    if has_latest:
        loaded = load_checkpoint(latest, model, optimizer)
        return loaded.step, "latest", loaded.extra
    if cfg.init:
        if is_training_checkpoint(cfg.init):
            load_checkpoint(cfg.init, model)  # weights only: a fine-tune starts its own schedule
        else:
            load_released_checkpoint(model.module if hasattr(model, "module") else model, cfg.init)
        return 0, "init", {}
    return 0, "scratch", {}
