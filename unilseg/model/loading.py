"""Load a model for inference from either kind of checkpoint.

Our training checkpoints carry their config, so the file alone rebuilds the model. The
released UniLSeg-20 file carries only weights: name the preset it belongs to
(`unilseg-swin-b`) and it is mapped and loaded strictly. A preset named beside one of our
checkpoints is checked against the config it carries: an unknown preset, or one that differs,
is a one-line error rather than an option silently dropped.
"""

from __future__ import annotations

import os

from common.errors import UniLSegError
from unilseg.checkpoint import FORMAT, load_checkpoint, load_released_checkpoint, read_checkpoint_file

from .config import DEFAULT_PRESET, UniLSegConfig, list_presets, load_preset
from .unilseg import UniLSeg, build_model


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    """True for files written by unilseg.checkpoint.save_checkpoint (a local path or URL)."""
    ckpt = read_checkpoint_file(path, mmap=True)
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def model_config(preset: str | None, init: str | os.PathLike | None = None) -> UniLSegConfig:
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
    if not is_training_checkpoint(init):
        raise UniLSegError(
            f"{init} carries no model config (the released file?): give the preset "
            "(unilseg-swin-b for UniLSeg20_no_finetune.pth)"
        )
    return UniLSegConfig(**read_checkpoint_file(init, mmap=True)["config"])


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two config dicts differ, with both values."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} {va!r} vs {vb!r}")
    return out


def _shipped_preset_of(config: UniLSegConfig) -> str | None:
    """The shipped preset whose config this is, if any (to name what a checkpoint was trained as)."""
    return next((name for name in list_presets() if load_preset(name) == config), None)


def check_preset_matches(
    preset: str, wanted: UniLSegConfig, saved: UniLSegConfig, checkpoint: str | os.PathLike
) -> None:
    """A preset given beside one of our checkpoints must be the config the checkpoint carries.

    Our checkpoints rebuild their own model, so a preset there can only agree or be a mistake
    (the user believes they evaluate another model); silently dropping it hid the mistake.

    Raises:
        UniLSegError: one line naming the preset, the checkpoint's own config and the first
            differing fields.
    """
    if wanted == saved:
        return
    shipped = _shipped_preset_of(saved)
    own = f"preset {shipped!r}" if shipped else "a config of its own (no shipped preset)"
    diffs = _differences(wanted.to_dict(), saved.to_dict())
    more = f", ... ({len(diffs)} fields)" if len(diffs) > 3 else ""
    raise UniLSegError(
        f"preset {preset!r} differs from the model {checkpoint} carries, {own}: "
        f"{', '.join(diffs[:3])}{more}; leave the preset out (our checkpoints carry their config)"
    )


def load_model(checkpoint: str | os.PathLike, preset: str | None = None) -> UniLSeg:
    """Builds and loads a model in eval mode.

    Args:
        checkpoint (str | PathLike): our checkpoint, or the released UniLSeg-20 .pth (a local
            path or an fsspec URL).
        preset (str | None): preset name or JSON path; required for the released file. Our own
            files carry their config: a preset there must name that same config.

    Raises:
        UnknownNameError: an unknown preset (whatever the checkpoint).
        UniLSegError: a released checkpoint without a preset; a preset that differs from the
            config our checkpoint carries (both named).
        CheckpointError: keys or shapes that do not match (named in the message).
    """
    wanted = load_preset(preset) if preset is not None else None  # an unknown preset fails before the file is read
    if is_training_checkpoint(checkpoint):
        model = load_checkpoint(checkpoint).model  # built from its own config
        if wanted is not None:
            check_preset_matches(preset, wanted, model.config, checkpoint)
    elif wanted is None:
        raise UniLSegError(
            f"{checkpoint} is not a unilseg training checkpoint; for the released UniLSeg-20 file "
            "pass --preset unilseg-swin-b"
        )
    else:
        model = load_released_checkpoint(build_model(wanted), checkpoint)
    return model.eval()
