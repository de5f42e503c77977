"""Query decoder: a DETR-style transformer decoder whose single query is the sentence embedding.

The stride-32 fused map is projected to d_model (`visual_proj`, 3x3 conv+BN+ReLU) and becomes
the memory with a 2D sine position; the sentence is projected (`text_proj`, Linear without
bias + BatchNorm1d + ReLU) and used as the query position, with the target starting at zero.
Post-norm layers; a shared final `decoder.norm` is applied to every layer's output, which
gives the auxiliary outputs. Names follow the released checkpoint
(`query_transformer.decoder.layers.N.*`, `query_transformer.decoder.norm`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import conv_bn_relu, linear_bn_relu
from .position import PositionEmbeddingSine2D


class DecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: self-attention, cross-attention to memory, ReLU FFN.

    Args:
        d_model (int): width.
        nhead (int): attention heads.
        dim_feedforward (int): FFN hidden width.
        dropout (float): dropout in attentions and FFN.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout, self.dropout1 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        """tgt (Q, B, C), memory (HW, B, C), pos (HW, B, C), query_pos (Q, B, C) -> (Q, B, C)."""
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, q, tgt, need_weights=False)[0]))
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        return self.feed_forward(self.norm2(tgt + self.dropout2(out)))

    def feed_forward(self, tgt: torch.Tensor) -> torch.Tensor:
        """The post-norm ReLU FFN with its residual: (N, B, C) -> (N, B, C)."""
        out = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(out))


class TransformerDecoder(nn.Module):
    """`layers` + shared final `norm`; returns every layer's normed output (num_layers, Q, B, C)."""

    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        outs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
            outs.append(self.norm(tgt))
        return torch.stack(outs)


class QueryTransformer(nn.Module):
    """DETR transformer with no encoder layers (the released model has none): only `decoder`."""

    def __init__(self, d_model: int, nhead: int, num_dec: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.decoder = TransformerDecoder(d_model, nhead, num_dec, dim_feedforward, dropout)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: torch.Tensor, query_embed: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
        """src (B, C, H, W), query_embed (B, Q, C), pos_embed (B, C, H, W) -> (num_dec, B, Q, C)."""
        memory = src.flatten(2).permute(2, 0, 1)  # (HW, B, C)
        pos = pos_embed.flatten(2).permute(2, 0, 1)
        query_pos = query_embed.transpose(0, 1)  # (Q, B, C)
        hs = self.decoder(torch.zeros_like(query_pos), memory, pos, query_pos)  # (num_dec, Q, B, C)
        return hs.transpose(1, 2)


class QueryDecoder(nn.Module):
    """Stride-32 fused map + sentence embedding -> one query per decoder layer.

    Args:
        d_model (int): decoder width.
        visual_dim (int): channels of the stride-32 map (1024 for Swin-B).
        text_dim (int): width of the sentence embedding (512 for CLIP ViT-B/16).
        nhead (int): attention heads.
        num_dec (int): decoder layers.
        dim_feedforward (int): FFN hidden width.
        dropout (float): dropout in the decoder.
    """

    def __init__(
        self,
        d_model: int = 256,
        visual_dim: int = 1024,
        text_dim: int = 512,
        nhead: int = 8,
        num_dec: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.query_transformer = QueryTransformer(d_model, nhead, num_dec, dim_feedforward, dropout)
        self.visual_proj = conv_bn_relu(visual_dim, d_model, 3, 1)
        self.text_proj = linear_bn_relu(text_dim, d_model)
        self.visual_pos = PositionEmbeddingSine2D(d_model // 2)

    def forward(self, visual: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """visual (B, Cv, H, W), sentence (B, Dt) -> queries (num_dec, B, 1, d_model)."""
        visual = self.visual_proj(visual)  # (B, C, H, W)
        query = self.text_proj(sentence).unsqueeze(1)  # (B, 1, C)
        return self.query_transformer(visual, query, self.visual_pos(visual))
