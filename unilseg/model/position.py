"""Fixed sine position embeddings (DETR style, normalised to [0, 2*pi]); no weights.

They follow the released UniLSeg code: the 2D version centres each cell ((i - 0.5) / n),
the 1D version (over words) does not (i / n). Channels interleave sin and cos of the
same frequency.

`PositionFeatures` (not in the released model; `head.position_features`) adds a learned
projection of the 2D embedding to the visual maps themselves. The released layout puts
position only into attention queries and keys, so values, and the pixel features the query
is matched against, carry none: "the star on the left" then has to be inferred from
padding effects. With it, every feature knows where it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _sine(embed: torch.Tensor, num_feats: int, temperature: float) -> torch.Tensor:
    """(...,) positions -> (..., num_feats) as [sin(p/t0), cos(p/t0), sin(p/t1), cos(p/t1), ...]."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=embed.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    pos = embed[..., None] / dim_t
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


class PositionEmbeddingSine2D(nn.Module):
    """2D sine position of a feature map: (B, C, H, W) -> (B, 2 * num_pos_feats, H, W).

    Args:
        num_pos_feats (int): channels per axis; the output has twice as many (y first, then x).
        temperature (float): base of the frequency ladder.
    """

    def __init__(self, num_pos_feats: int = 64, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        eps, scale = 1e-6, 2 * math.pi
        y = (torch.arange(1, h + 1, dtype=torch.float32, device=x.device) - 0.5) / (h + eps) * scale
        xs = (torch.arange(1, w + 1, dtype=torch.float32, device=x.device) - 0.5) / (w + eps) * scale
        pos_y = _sine(y, self.num_pos_feats, self.temperature)[:, None, :].expand(h, w, -1)  # (H, W, F)
        pos_x = _sine(xs, self.num_pos_feats, self.temperature)[None, :, :].expand(h, w, -1)  # (H, W, F)
        pos = torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1)  # (2F, H, W)
        return pos.unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)


class PositionEmbeddingSine1D(nn.Module):
    """1D sine position of a sequence: (B, L, C) -> (B, num_pos_feats, L).

    Args:
        num_pos_feats (int): output channels.
        temperature (float): base of the frequency ladder.
    """

    def __init__(self, num_pos_feats: int = 256, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        pos = torch.arange(1, length + 1, dtype=torch.float32, device=x.device) / (length + 1e-6) * (2 * math.pi)
        pos = _sine(pos, self.num_pos_feats, self.temperature).t()  # (F, L)
        return pos.unsqueeze(0).expand(b, -1, -1).to(x.dtype)


class PositionFeatures(nn.Module):
    """Adds a learned 1x1 projection of the 2D sine position to each visual stage.

    Args:
        channels (tuple[int, ...]): channels of the maps, stride 4 first.
        num_pos_feats (int): sine channels per axis fed to the projections (2x in total).
    """

    def __init__(self, channels: tuple[int, ...], num_pos_feats: int = 16) -> None:
        super().__init__()
        self.pos = PositionEmbeddingSine2D(num_pos_feats)
        self.proj = nn.ModuleList([nn.Conv2d(2 * num_pos_feats, c, 1) for c in channels])
        for conv in self.proj:  # start near the released behaviour: a small push, learned up if it helps
            nn.init.normal_(conv.weight, std=0.02)
            nn.init.zeros_(conv.bias)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(B, C_i, H_i, W_i)] -> the same maps plus their position projections."""
        return [f + proj(self.pos(f)) for f, proj in zip(feats, self.proj)]
