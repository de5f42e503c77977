"""Load a model for inference from either kind of checkpoint.

Our training checkpoints carry their config, so the file alone rebuilds the model. The
released UniLSeg-20 file carries only weights: name the preset it belongs to
(`unilseg-swin-b`) and it is mapped and loaded strictly.
"""

from __future__ import annotations

import os

from shards.errors import UniLSegError
from unilseg.checkpoint import FORMAT, load_checkpoint, load_released_checkpoint, read_checkpoint_file

from .config import DEFAULT_PRESET, UniLSegConfig, load_preset
from .unilseg import UniLSeg, build_model


def is_training_checkpoint(path: str | os.PathLike, storage_options: dict | None = None) -> bool:
    """True for files written by unilseg.checkpoint.save_checkpoint (a local path or URL)."""
    ckpt = read_checkpoint_file(path, mmap=True, storage_options=storage_options)
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def model_config(preset: str | None, init: str | os.PathLike | None = None,
                 storage_options: dict | None = None) -> UniLSegConfig:
    """The config a run builds: the preset when given, else the one saved in `init` (our
    checkpoints carry it), else DEFAULT_PRESET.

    Raises:
        UnknownNameError: an unknown preset.
        UniLSegError: `init` is the released file (it carries no config) and no preset is given.
    """
    if preset is not None:
        return load_preset(preset)
    if init is None:
        return load_preset(DEFAULT_PRESET)
    if not is_training_checkpoint(init, storage_options):
        raise UniLSegError(f"{init} carries no model config (the released file?): give the preset "
                           "(unilseg-swin-b for UniLSeg20_no_finetune.pth)")
    return UniLSegConfig(**read_checkpoint_file(init, mmap=True, storage_options=storage_options)["config"])


def load_model(checkpoint: str | os.PathLike, preset: str | None = None,
               storage_options: dict | None = None) -> UniLSeg:
    """Builds and loads a model in eval mode.

    Args:
        checkpoint (str | PathLike): our checkpoint, or the released UniLSeg-20 .pth (a local
            path or an fsspec URL).
        preset (str | None): preset name or JSON path; required for the released file,
            not needed for our own files (they carry their config).
        storage_options (dict | None): fsspec options for a URL.

    Raises:
        UniLSegError: a released checkpoint without a preset.
        CheckpointError: keys or shapes that do not match (named in the message).
    """
    if is_training_checkpoint(checkpoint, storage_options):
        model = load_checkpoint(checkpoint, storage_options=storage_options).model
    elif preset is None:
        raise UniLSegError(f"{checkpoint} is not a unilseg training checkpoint; for the released UniLSeg-20 file "
                         "pass --preset unilseg-swin-b")
    else:
        model = load_released_checkpoint(build_model(preset), checkpoint, storage_options)
    return model.eval()
