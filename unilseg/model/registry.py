"""Registries of visual and text encoders, after timm's `register_model` / `create_model`.

An encoder is registered by decorating its constructor function::

    @register_visual_encoder("swin-b")
    def swin_b(pretrained: str | None = None, **kw) -> SwinTransformer: ...

    encoder = create_visual_encoder("swin-b", drop_path_rate=0.3)

Registering a name twice raises: two modules silently shadowing each other is a bug.
Text encoders also register a tokenizer factory (`tokenizer=`), because the ids a text
encoder expects are part of its contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from common.registry import Registry

VISUAL_ENCODERS = Registry("visual encoder")
TEXT_ENCODERS = Registry("text encoder")


def register_visual_encoder(name: str) -> Callable:
    """Decorator: registers a constructor returning a 4-stage encoder (strides 4/8/16/32).

    The module must expose `channels` (tuple of 4 ints) and map (B, 3, H, W) to a list of
    4 maps (B, C_i, H/2^(i+2), W/2^(i+2)).
    """
    return VISUAL_ENCODERS.register(name)


def register_text_encoder(name: str, tokenizer: Callable) -> Callable:
    """Decorator: registers a constructor returning a text encoder.

    The module must expose `word_dim`, `sentence_dim` and `context_length` and map token ids
    (B, L) (0 = padding) to (words (B, L, word_dim), sentence (B, sentence_dim)).

    Args:
        name (str): registry name.
        tokenizer (Callable): `tokenizer(text_cfg) -> Tokenizer` giving the ids it expects.
    """
    return TEXT_ENCODERS.register(name, tokenizer=tokenizer)


def create_visual_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Builds the visual encoder registered as `name`."""
    return VISUAL_ENCODERS.build(name, **kwargs)


def create_text_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Builds the text encoder registered as `name`."""
    return TEXT_ENCODERS.build(name, **kwargs)


def list_visual_encoders() -> list[str]:
    return VISUAL_ENCODERS.names()


def list_text_encoders() -> list[str]:
    return TEXT_ENCODERS.names()
