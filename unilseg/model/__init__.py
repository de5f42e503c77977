"""The UniLSeg model: encoder registries, typed config and presets, the network, inference.

from unilseg.model import build_model, predict
model = build_model("unilseg-tiny")        # or "unilseg-swin-b", a JSON path, a UniLSegConfig
out = model(images, token_ids)             # {"logits": (B, 1, S/4, S/4), "aux_logits": [...]}
mask = predict(model, image_rgb, "the dog on the left")   # (H, W) bool
"""

# importing the encoder modules registers them
from . import clip_text, conv_encoder, hf_text, swin  # noqa: F401
from .config import HeadConfig, TextEncoderConfig, UniLSegConfig, VisualEncoderConfig, list_presets, load_preset
from .predict import predict, predict_probs
from .registry import (
    create_text_encoder,
    create_visual_encoder,
    list_text_encoders,
    list_visual_encoders,
    register_text_encoder,
    register_visual_encoder,
)
from .unilseg import UniLSeg, build_model, build_tokenizer

__all__ = [
    "UniLSeg",
    "UniLSegConfig",
    "VisualEncoderConfig",
    "TextEncoderConfig",
    "HeadConfig",
    "build_model",
    "build_tokenizer",
    "load_preset",
    "list_presets",
    "predict",
    "predict_probs",
    "create_visual_encoder",
    "create_text_encoder",
    "register_visual_encoder",
    "register_text_encoder",
    "list_visual_encoders",
    "list_text_encoders",
]
