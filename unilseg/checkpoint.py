"""Loading the released UniLSeg-20 checkpoint, and our own training checkpoints.

Released file: `torch.load(...)["state_dict"]`, keys prefixed with `module.` (the demo wraps
the model in DataParallel). Names map to ours by one prefix table, RELEASED_PREFIXES; the
CLIP image tower (`backbone.visual.*`), saved although it never runs, is skipped by rule.
Every load is strict and fails with an error that names the missing/unexpected keys.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from common.errors import MissingInputError, UniLSegError
from shards import storage
from unilseg.model import build_model

# (released name prefix, our prefix or None = skip); the first match wins, so the skip rule
# for the CLIP image tower comes before the text tower's "backbone." rule.
RELEASED_PREFIXES: tuple[tuple[str, str | None], ...] = (
    ("backbone.visual.", None),  # CLIP ViT-B/16 image tower: stored, never run
    ("backbone_visual.", "visual_encoder."),
    ("backbone.", "text_encoder."),
    ("fusion.", "pre_fusion.fusion."),
    ("fusion_proj.", "pre_fusion.fusion_proj."),
    ("all_fusion_proj.", "pre_fusion.all_fusion_proj."),
    ("all_fusion_module.", "pre_fusion.all_fusion_module."),
    ("pixel_decoder.", "pixel_decoder."),
    ("query_decoder.", "query_decoder."),
)
FORMAT = "unilseg-checkpoint-v1"


class CheckpointError(UniLSegError):
    """A file that is no loadable checkpoint, or one that does not match the model (missing,
    unexpected or misshapen entries, named in the message)."""


def read_checkpoint_file(path: str | os.PathLike, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``; whatever is wrong with the file becomes one line.

    Args:
        path (str | PathLike): the file, a local path or an fsspec URL (fetched once into the
            bounded local cache of shards.storage.local_copy, then read like a local file).
        mmap (bool): map the tensors instead of reading them (cheap peeks at the step or
            config); files in torch's legacy format, which cannot be mapped, are read whole.

    Raises:
        MissingInputError: no such file.
        CheckpointError: "not a loadable checkpoint: PATH: why" (a plain pickle, Python
            objects that weights_only refuses, a truncated or foreign file).
    """
    try:
        local = storage.local_copy(path)
    except FileNotFoundError as e:
        raise MissingInputError(f"checkpoint {path} does not exist") from e
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol draws a warning before it is refused
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(local, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError as e:
        if mmap and "mmap can only be used" in str(e):  # legacy format: no mmap, same content
            return read_checkpoint_file(path, mmap=False)
        raise CheckpointError(f"not a loadable checkpoint: {path}: {_why(e)}") from e
    except Exception as e:  # torch raises UnpicklingError, EOFError, zip and OS errors for bad files
        raise CheckpointError(f"not a loadable checkpoint: {path}: {_why(e)}") from e


def _why(e: BaseException) -> str:
    """A torch.load failure in a few words (torch's own messages run to paragraphs)."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in text:
        return "it holds Python objects that safe (weights_only) loading refuses; a plain pickle is never loaded"
    if isinstance(e, (EOFError, zipfile.BadZipFile)) or "PytorchStreamReader" in text or "invalid load key" in text:
        return "the file is truncated or not a torch checkpoint"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(e).__name__}: {first[:200]}"


def map_released_key(key: str) -> str | None:
    """Released name (with or without `module.`) -> our name, or None for skipped entries.

    Raises:
        KeyError: if no rule of RELEASED_PREFIXES covers the name.
    """
    stripped = key[len("module.") :] if key.startswith("module.") else key
    for old, new in RELEASED_PREFIXES:
        if stripped.startswith(old):
            return None if new is None else new + stripped[len(old) :]
    raise KeyError(key)


def _describe(keys: list[str], limit: int = 20) -> str:
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_strict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint", unmapped: list[str] | None = None
) -> None:
    """load_state_dict(strict=True) with an error naming every missing/unexpected/misshapen key.

    `unmapped` names (checkpoint entries that could not be renamed) are reported as unexpected.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own)) + sorted(unmapped or [])
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or shapes:
        parts = [f"{source} does not match the model"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_describe(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_describe(shapes)}")
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def convert_released_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Released UniLSeg names -> ours, dropping the CLIP image tower.

    Returns:
        tuple: (converted state dict, names no rule covers).
    """
    out, unmapped = {}, []
    for k, v in state_dict.items():
        try:
            new = map_released_key(k)
        except KeyError:
            unmapped.append(k)
            continue
        if new is not None:
            out[new] = v
    return out, unmapped


def load_released_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Loads UniLSeg20_no_finetune.pth (or a file of the same layout) into the paper preset.

    Args:
        model (nn.Module): a UniLSeg built from the `unilseg-swin-b` preset.
        path (str | PathLike): the .pth file (a local path or URL); read with weights_only=True.

    Returns:
        nn.Module: the same model, loaded.

    Raises:
        CheckpointError: naming the missing/unexpected keys if the layouts differ.
    """
    ckpt = read_checkpoint_file(path)
    sd = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
    converted, unmapped = convert_released_state_dict(sd)
    load_state_dict_strict(model, converted, f"released checkpoint {path}", unmapped)
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path | str:
    """Writes model weights, optimizer state, step and model config; atomically (a local temp
    file, then a rename, or one upload to a URL: shards.storage.staged_output).

    A DDP/DataParallel wrapper is unwrapped, so names never carry `module.`. `extra` must hold
    only plain types (numbers, strings, lists, dicts, tensors) to load with weights_only=True.
    Returns the location written: a Path for a local file, the URL otherwise.
    """
    model = _unwrap(model)
    config = getattr(model, "config", None)
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "config": config.to_dict() if config is not None else None,
        "extra": extra or {},
    }
    path = storage.normalize(path)
    storage.makedirs(storage.parent(path) or ".")
    with storage.staged_output(path) as staged:
        torch.save(payload, staged)
    return Path(path) if storage.is_local(path) else path


class LoadedCheckpoint(NamedTuple):
    model: nn.Module  # the model, weights loaded
    step: int  # training step saved with it
    config: dict[str, Any] | None  # UniLSegConfig as a dict
    extra: dict[str, Any]  # whatever the trainer saved


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> LoadedCheckpoint:
    """Reads a checkpoint written by save_checkpoint (weights_only=True), strictly.

    Args:
        path (str | PathLike): the file (a local path or URL).
        model (nn.Module | None): model to load into; None builds one from the saved config.
        optimizer (torch.optim.Optimizer | None): restored too when given and saved.
    """
    ckpt = read_checkpoint_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (for the released model use load_released_checkpoint)")
    if model is None:
        if ckpt["config"] is None:
            raise CheckpointError(f"{path} has no config; pass the model to load into")
        model = build_model(ckpt["config"])
    load_state_dict_strict(_unwrap(model), ckpt["model"], source=f"checkpoint {path}")
    if optimizer is not None:
        if ckpt["optimizer"] is None:
            raise CheckpointError(f"{path} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    return LoadedCheckpoint(model, ckpt["step"], ckpt["config"], ckpt["extra"])
