"""The UniLSeg model as the released inference code builds it (CRIS-based, no SAM decoder).

images (B, 3, S, S) + token ids (B, L)
  -> visual encoder: 4 maps at strides 4/8/16/32        (visual_encoder, "backbone_visual" when released)
  -> text encoder: words (B, L, Dw), sentence (B, Ds)   (text_encoder, "backbone" when released)
  -> Pre-Fusion of every stage with the words            (pre_fusion)
  -> pixel decoder: (B, mask_dim, S/4, S/4)              (pixel_decoder)
  -> query decoder on the stride-32 map + sentence       (query_decoder)
     (or on the S/4 pixel features: head.query_on_pixels)
  -> logits = query . pixel features, one per decoder layer; the last is the prediction.

Options beyond the released layout, off in the paper preset (which then builds exactly the
released modules): `head.position_features` adds learned position features to the four
visual maps before Pre-Fusion (position_features), `head.upsample` refines the pixel
features to S/2 or S with an image stem (upsampler), so logits come out at that resolution,
and `head.query_on_pixels` lets the query decoder attend to the S/4 pixel features instead
of the stride-32 map.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .config import UniLSegConfig, load_preset
from .fusion import PreFusion
from .pixel_decoder import CrossModalFPNDecoder
from .position import PositionFeatures
from .query_decoder import QueryDecoder
from .registry import TEXT_ENCODERS, create_text_encoder, create_visual_encoder
from .upsample import PixelUpsampler


class UniLSeg(nn.Module):
    """Language-guided segmentation at any granularity.

    Args:
        config (UniLSegConfig): encoders, head sizes, input size.
    """

    def __init__(self, config: UniLSegConfig) -> None:
        super().__init__()
        self.config = config
        v, t, h = config.visual, config.text, config.head
        self.visual_encoder = create_visual_encoder(v.name, pretrained=v.pretrained, **v.kwargs)
        self.text_encoder = create_text_encoder(
            t.name, pretrained=t.pretrained, context_length=t.context_length, **t.kwargs
        )
        channels = tuple(self.visual_encoder.channels)
        word_dim, sentence_dim = self.text_encoder.word_dim, self.text_encoder.sentence_dim
        self.pre_fusion = PreFusion(channels, word_dim, h.nhead, h.dropout)
        self.pixel_decoder = CrossModalFPNDecoder(
            channels, h.conv_dim, h.mask_dim, word_dim, h.nhead, h.ffn_dim, h.dropout, tuple(h.sr_ratios)
        )
        # the released decoder reads the stride-32 map: at S = 96 that is 3 x 3 cells, each blurring
        # several small objects together, so the query cannot single one out (query_on_pixels)
        query_memory = h.mask_dim if h.query_on_pixels else channels[-1]
        self.query_decoder = QueryDecoder(
            h.d_model, query_memory, sentence_dim, h.nhead, h.num_dec, h.ffn_dim, h.dropout
        )
        # only registered when on, so the paper preset's state dict stays the released one
        if h.position_features:
            self.position_features = PositionFeatures(channels)
        if h.upsample:
            self.upsampler = PixelUpsampler(h.mask_dim, h.upsample, h.stem_dim)
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The tokenizer giving the ids this model's text encoder expects (built once)."""
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.config)
        return self._tokenizer

    def forward(self, images: torch.Tensor, token_ids: torch.Tensor) -> dict[str, Any]:
        """Mask logits for each (image, expression) pair.

        Args:
            images (torch.Tensor): (B, 3, S, S) letterboxed, CLIP-normalised images.
            token_ids (torch.Tensor): (B, L) int64 ids, 0 = padding.

        Returns:
            dict: "logits" (B, 1, S/4, S/4) from the last decoder layer, and "aux_logits", the list
            of (B, 1, S/4, S/4) logits of the earlier layers (empty when config.aux_loss is False).
            With head.upsample = k the logits are S/4 * 2^k square.
        """
        pad_mask = token_ids == 0  # (B, L) True = padding
        feats = self.visual_encoder(images)  # [(B, C_i, S/2^(i+2), ...)] x 4
        if self.config.head.position_features:
            feats = self.position_features(feats)
        words, sentence = self.text_encoder(token_ids)  # (B, L, Dw), (B, Ds)
        feats = self.pre_fusion(feats, words, pad_mask)
        pixel = self.pixel_decoder(feats, words, pad_mask)  # (B, mask_dim, S/4, S/4)
        memory = pixel if self.config.head.query_on_pixels else feats[-1]
        if self.config.head.upsample:
            pixel = self.upsampler(pixel, images)  # (B, mask_dim, S/4 * 2^k, ...)
        queries = self.query_decoder(memory, sentence)  # (num_dec, B, 1, d_model)
        b, c, h, w = pixel.shape
        flat = pixel.flatten(2)  # (B, C, HW)
        layers = queries if self.config.aux_loss else queries[-1:]
        logits = [torch.bmm(q, flat).view(b, 1, h, w) for q in layers]
        return {"logits": logits[-1], "aux_logits": logits[:-1]}


def build_tokenizer(config: UniLSegConfig):
    """The tokenizer registered with config.text.name, for data pipelines that have no model."""
    return TEXT_ENCODERS.meta(config.text.name)["tokenizer"](config.text)


def build_model(preset_or_config: str | UniLSegConfig | dict) -> UniLSeg:
    """Builds UniLSeg from a preset name/JSON path, a config, or a config dict (random weights
    except what the encoder configs' `pretrained` paths load)."""
    if isinstance(preset_or_config, UniLSegConfig):
        config = preset_or_config
    elif isinstance(preset_or_config, dict):
        config = UniLSegConfig(**preset_or_config)
    else:
        config = load_preset(preset_or_config)
    return UniLSeg(config)
