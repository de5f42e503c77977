"""Pre-Fusion: every visual stage's tokens attend to the (projected) words before decoding.

Names follow the released checkpoint: `fusion` + `fusion_proj` for stage 3 (stride 32),
`all_fusion_proj.{0,1,2}` + `all_fusion_module.{0,1,2}` for stages 0-2. Each fusion is one
multi-head cross-attention with a residual add (no norm, no FFN); the queries carry a
normalised 2D sine position, the keys none, and padded words (id 0) are masked.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .position import PositionEmbeddingSine2D


class FusionModule(nn.Module):
    """Cross-attention of visual tokens over words, added to the tokens.

    Args:
        d_model (int): token width (visual and projected words).
        nhead (int): attention heads.
        dropout (float): attention dropout.
    """

    def __init__(self, d_model: int, nhead: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        """tgt (HW, B, C), memory (L, B, C), mask (B, L) True = pad, query_pos (HW, B, C) -> (HW, B, C)."""
        out = self.multihead_attn(
            query=tgt + query_pos,
            key=memory,
            value=memory,
            key_padding_mask=memory_key_padding_mask,
            need_weights=False,
        )[0]
        return tgt + out


class PreFusion(nn.Module):
    """Fuses words into all four visual stages; every map keeps its shape.

    Args:
        channels (tuple[int, ...]): channels of the 4 stages (128/256/512/1024 for Swin-B).
        word_dim (int): width of the word features.
        nhead (int): attention heads.
        dropout (float): attention dropout.
    """

    def __init__(self, channels: tuple[int, ...], word_dim: int, nhead: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.fusion = FusionModule(channels[-1], nhead, dropout)
        self.fusion_proj = nn.Linear(word_dim, channels[-1])
        self.all_fusion_proj = nn.ModuleList([nn.Linear(word_dim, c) for c in channels[:-1]])
        self.all_fusion_module = nn.ModuleList([FusionModule(c, nhead, dropout) for c in channels[:-1]])
        self.pos = nn.ModuleList([PositionEmbeddingSine2D(c // 2) for c in channels])

    def forward(self, feats: list[torch.Tensor], words: torch.Tensor, pad_mask: torch.Tensor) -> list[torch.Tensor]:
        """feats [(B, C_i, H_i, W_i)] x 4, words (B, L, Dw), pad_mask (B, L) -> fused feats, same shapes."""
        projs = list(self.all_fusion_proj) + [self.fusion_proj]
        modules = list(self.all_fusion_module) + [self.fusion]
        out = []
        for feat, proj, module, pos in zip(feats, projs, modules, self.pos):
            b, c, h, w = feat.shape
            tokens = feat.flatten(2).permute(2, 0, 1)  # (HW, B, C)
            query_pos = pos(feat).flatten(2).permute(2, 0, 1)  # (HW, B, C)
            memory = proj(words).transpose(0, 1)  # (L, B, C)
            fused = module(tokens, memory, pad_mask, query_pos)
            out.append(fused.permute(1, 2, 0).reshape(b, c, h, w))
        return out
