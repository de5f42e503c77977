"""Typed configuration of the UniLSeg model; presets are JSON files loaded with `UniLSegConfig(**d)`.

Nested sections may be given as dicts; every dataclass rejects unknown keys, so a typo in a
preset fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import MissingInputError, UnknownNameError
from common.settings import SettingsError, from_dict

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_PRESET = "unilseg-tiny"  # what training, the demo and tests build when no preset is named


@dataclass
class VisualEncoderConfig:
    name: str = "swin-b"  # registry name (see list_visual_encoders())
    pretrained: str | None = None  # local weights file for the encoder alone, or None (random)
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments, e.g. drop_path_rate


@dataclass
class TextEncoderConfig:
    name: str = "clip-b16"  # registry name (see list_text_encoders())
    context_length: int = 17  # token ids per expression: SOT + BPE + EOT, zero padded
    pretrained: str | None = None  # local weights file (CLIP) or model directory (BERT), or None
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments


@dataclass
class HeadConfig:
    conv_dim: int = 512  # pixel decoder width (adapters, VL blocks, 3x3 layers)
    mask_dim: int = 256  # channels of the 1/4 mask features; must equal d_model
    d_model: int = 256  # query decoder width
    num_dec: int = 6  # DETR decoder layers (each gives an auxiliary output)
    nhead: int = 8  # heads of every attention in the head (Pre-Fusion, VL blocks, decoder)
    ffn_dim: int = 2048  # hidden width of the VL-block and decoder FFNs
    sr_ratios: list[int] = field(default_factory=lambda: [8, 4, 2, 1])  # VL self-attn shrink, strides 4..32
    dropout: float = 0.1  # dropout in attentions and FFNs of the head
    # Options beyond the released layout (off by default, so the paper preset builds exactly the
    # released modules): the tiny preset turns them on.
    position_features: bool = False  # add a learned projection of the 2D sine position to every visual stage
    upsample: int = 0  # x2 refinement steps after the pixel decoder (0: logits at S/4, 1: S/2, 2: S)
    stem_dim: int = 16  # channels of the image stem each refinement step fuses in
    query_on_pixels: bool = False  # the query decoder attends to the S/4 pixel features, not the stride-32 map

    def __post_init__(self) -> None:
        if self.mask_dim != self.d_model:
            raise SettingsError(
                f"mask_dim ({self.mask_dim}) must equal d_model ({self.d_model}): logits are query . pixel features"
            )
        if self.upsample not in (0, 1, 2):
            raise ValueError(f"upsample must be 0, 1 or 2 (logits at S/4, S/2 or S), got {self.upsample}")
        if len(self.sr_ratios) != 4:
            raise SettingsError(f"sr_ratios needs one ratio per stage (4), got {self.sr_ratios}")
        self.sr_ratios = list(self.sr_ratios)


@dataclass
class UniLSegConfig:
    visual: VisualEncoderConfig = field(default_factory=VisualEncoderConfig)  # Swin-like 4-stage encoder
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)  # CLIP-like text encoder
    head: HeadConfig = field(default_factory=HeadConfig)  # Pre-Fusion, pixel and query decoders
    input_size: int = 480  # square letterbox side S in pixels; logits are S/4 (S/2, S with head.upsample)
    aux_loss: bool = True  # return the logits of every decoder layer but the last as aux_logits
    threshold: float = 0.35  # sigmoid probability above which a pixel is foreground in predict()

    def __post_init__(self) -> None:
        for name, cls in (("visual", VisualEncoderConfig), ("text", TextEncoderConfig), ("head", HeadConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, from_dict(cls, value, name))
            elif not isinstance(value, cls):
                raise SettingsError(f"{name} must be a {cls.__name__} or dict, got {type(value).__name__}")
        if self.input_size % 32:
            raise SettingsError(f"input_size ({self.input_size}) must be a multiple of 32 (4 stages, stride 32)")
        if self.input_size // 4 < max(self.head.sr_ratios):
            raise SettingsError(f"input_size ({self.input_size}) too small for sr_ratios {self.head.sr_ratios}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON- and weights_only-safe) that `UniLSegConfig(**d)` reads back."""
        return dataclasses.asdict(self)


def list_presets() -> list[str]:
    """Names of the presets shipped in unilseg/presets/."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> UniLSegConfig:
    """Reads a preset by name ("unilseg-tiny") or from a JSON file path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PRESET_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise UnknownNameError(
                f"unknown preset {str(name_or_path)!r}; shipped: {', '.join(list_presets())} (or a JSON file)"
            )
    elif not path.is_file():
        raise MissingInputError(f"no preset file {path}")
    return from_dict(UniLSegConfig, json.loads(path.read_text()), f"preset {path}")
