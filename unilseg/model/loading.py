"""Load a model for inference from either kind of checkpoint.

Our training checkpoints carry their config, so the file alone rebuilds the model. The
released UniLSeg-20 file carries only weights: name the preset it belongs to
(`unilseg-swin-b`) and it is mapped and loaded strictly.
"""

from __future__ import annotations

import os

import torch

from unilseg.checkpoint import FORMAT, load_checkpoint, load_released_checkpoint

from .unilseg import UniLSeg, build_model


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    """True for files written by unilseg.checkpoint.save_checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def load_model(checkpoint: str | os.PathLike, preset: str | None = None) -> UniLSeg:
    """Builds and loads a model in eval mode.

    Args:
        checkpoint (str | PathLike): our checkpoint, or the released UniLSeg-20 .pth.
        preset (str | None): preset name or JSON path; required for the released file,
            not needed for our own files (they carry their config).

    Raises:
        ValueError: a released checkpoint without a preset.
        CheckpointError: keys or shapes that do not match (named in the message).
    """
    if is_training_checkpoint(checkpoint):
        model = load_checkpoint(checkpoint).model
    elif preset is None:
        raise ValueError(f"{checkpoint} is not a unilseg training checkpoint; for the released UniLSeg-20 file "
                         "pass --preset unilseg-swin-b")
    else:
        model = load_released_checkpoint(build_model(preset), checkpoint)
    return model.eval()
