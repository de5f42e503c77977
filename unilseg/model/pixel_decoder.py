"""Cross-modal FPN pixel decoder: top-down from stride 32 to stride 4 with vision-language blocks.

Per level k (4 = stride 32 ... 1 = stride 4): `adapter_k` (1x1 conv+BN+ReLU to conv_dim),
`cross_attn_k` (a VisionLanguageBlock), add the bilinearly upsampled coarser result, then
`layer_k` (3x3 conv+BN+ReLU). `mask_features` (3x3 conv+BN+ReLU) gives the (B, mask_dim,
H/4, W/4) pixel features. Names follow the released checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import conv_bn_relu
from .position import PositionEmbeddingSine1D, PositionEmbeddingSine2D
from .query_decoder import DecoderLayer


class VisionLanguageBlock(DecoderLayer):
    """Post-norm block: joint self-attention over [visual; words] (visual part kept), cross-attention
    of visual tokens to the words, FFN.

    For `sr_ratio` > 1 the visual q/k/v of the self-attention are bilinearly shrunk by that factor
    and the result is enlarged back, which keeps the 1/4 level affordable.

    Args:
        d_model (int): token width.
        nhead (int): attention heads.
        dim_feedforward (int): FFN hidden width.
        dropout (float): dropout in attentions and FFN.
        sr_ratio (int): spatial reduction of the self-attention.
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1, sr_ratio: int = 1
    ) -> None:
        super().__init__(d_model, nhead, dim_feedforward, dropout)  # same modules and names as DETR's layer
        self.sr_ratio = sr_ratio

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        h: int,
        w: int,
        memory_key_padding_mask: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
    ) -> torch.Tensor:
        """tgt (HW, B, C), memory (L, B, C), mask (B, L) True = pad, pos (L, B, C), query_pos (HW, B, C)
        -> (HW, B, C)."""
        b = tgt.shape[1]
        q = k = tgt + query_pos
        v = tgt
        if self.sr_ratio > 1:
            size = (int(h / self.sr_ratio), int(w / self.sr_ratio))
            q, k, v = (
                F.interpolate(t.permute(1, 2, 0).reshape(b, -1, h, w), size=size, mode="bilinear", align_corners=False)
                .flatten(2)
                .permute(2, 0, 1)
                for t in (q, k, v)
            )
        n_vis = q.shape[0]
        pad = torch.cat([memory_key_padding_mask.new_zeros(b, n_vis), memory_key_padding_mask], dim=1)
        out = self.self_attn(
            torch.cat([q, memory]),
            torch.cat([k, memory]),
            torch.cat([v, memory]),
            key_padding_mask=pad,
            need_weights=False,
        )[0][:n_vis]  # (hw', B, C)
        if self.sr_ratio > 1:
            out = (
                F.interpolate(
                    out.permute(1, 2, 0).reshape(b, -1, *size), size=(h, w), mode="bilinear", align_corners=False
                )
                .flatten(2)
                .permute(2, 0, 1)
            )
        tgt = self.norm1(tgt + self.dropout1(out))
        out = self.multihead_attn(
            tgt + query_pos, memory + pos, memory, key_padding_mask=memory_key_padding_mask, need_weights=False
        )[0]
        return self.feed_forward(self.norm2(tgt + self.dropout2(out)))


class CrossModalFPNDecoder(nn.Module):
    """Fused visual maps + words -> (B, mask_dim, H/4, W/4) pixel features.

    Args:
        feature_channels (tuple[int, ...]): channels of the 4 input maps (stride 4 first).
        conv_dim (int): decoder width.
        mask_dim (int): output channels.
        word_dim (int): width of the word features; projected to conv_dim by `word_proj`
            when different (the released model has word_dim == conv_dim == 512, no projection).
        nhead (int): attention heads of the VL blocks.
        dim_feedforward (int): FFN hidden width of the VL blocks.
        dropout (float): dropout of the VL blocks.
        sr_ratios (tuple[int, ...]): self-attention shrink per level, stride 4 first.
    """

    def __init__(
        self,
        feature_channels: tuple[int, ...],
        conv_dim: int = 512,
        mask_dim: int = 256,
        word_dim: int = 512,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
    ) -> None:
        super().__init__()
        self.num_levels = len(feature_channels)
        for k, c in enumerate(feature_channels, start=1):
            self.add_module(f"adapter_{k}", conv_bn_relu(c, conv_dim, 1))
            self.add_module(f"layer_{k}", conv_bn_relu(conv_dim, conv_dim, 3, 1))
        self.mask_features = conv_bn_relu(conv_dim, mask_dim, 3, 1)
        self.word_proj = nn.Identity() if word_dim == conv_dim else nn.Linear(word_dim, conv_dim)
        self.text_pos = PositionEmbeddingSine1D(conv_dim)
        self.visual_pos = PositionEmbeddingSine2D(conv_dim // 2)
        for k, sr in enumerate(sr_ratios, start=1):
            block = VisionLanguageBlock(conv_dim, nhead, dim_feedforward, dropout, sr_ratio=sr)
            for p in block.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            self.add_module(f"cross_attn_{k}", block)

    def forward(self, feats: list[torch.Tensor], words: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """feats [(B, C_i, H_i, W_i)] stride 4 first, words (B, L, Dw), pad_mask (B, L)
        -> (B, mask_dim, H_0, W_0)."""
        words = self.word_proj(words)
        text_pos = self.text_pos(words).permute(2, 0, 1)  # (L, B, C)
        memory = words.transpose(0, 1)  # (L, B, C)
        y = None
        for k in range(self.num_levels, 0, -1):  # stride 32 -> 4
            f = feats[k - 1]
            b, _, h, w = f.shape
            x = getattr(self, f"adapter_{k}")(f).flatten(2).permute(2, 0, 1)  # (HW, B, C)
            query_pos = self.visual_pos(f).flatten(2).permute(2, 0, 1)
            x = getattr(self, f"cross_attn_{k}")(x, memory, h, w, pad_mask, text_pos, query_pos)
            x = x.permute(1, 2, 0).reshape(b, -1, h, w)
            if y is not None:
                x = x + F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            y = getattr(self, f"layer_{k}")(x)
        return self.mask_features(y)
