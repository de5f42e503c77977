"""A small convolutional 4-stage encoder (registered as `tiny-conv`) for CPU demos.

A randomly initialised Swin has to learn locality from data; on a few thousand synthetic
samples on a CPU it does not get there. Convolutions have it built in, cost less per
pixel at this width, and learn colour and outline within a few hundred steps. Same
contract as every visual encoder (unilseg.model.registry): (B, 3, H, W) -> 4 maps at
strides 4/8/16/32 with `channels` listed. Not used by the paper preset.

Layout: stem (two 3x3 convs, stride 2 each) to stride 4, then per stage a stride-2 3x3
conv (stages 1-3) and `blocks` residual blocks of two 3x3 convs, BatchNorm + ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .layers import conv_bn_relu
from .registry import register_visual_encoder


def _down(in_dim: int, out_dim: int) -> nn.Sequential:
    """Stride-2 3x3 conv + BN + ReLU: (B, in_dim, H, W) -> (B, out_dim, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, 3, 2, 1, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True)
    )


class BasicBlock(nn.Module):
    """ResNet basic block: x + BN(conv(ReLU(BN(conv(x))))), then ReLU; shape kept."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(dim, dim, 3, 1)
        self.conv2 = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.BatchNorm2d(dim))
        nn.init.zeros_(self.conv2[1].weight)  # each block starts as the identity (a stable start from scratch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class ConvEncoder(nn.Module):
    """(B, 3, H, W) -> [(B, C_i, H / 2^(i+2), W / 2^(i+2))] for i = 0..3.

    Args:
        channels (Sequence[int]): channels of the 4 stages (stride 4 first).
        blocks (Sequence[int]): residual blocks per stage.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 96, 128), blocks: Sequence[int] = (1, 1, 1, 1)) -> None:
        super().__init__()
        if len(channels) != 4 or len(blocks) != 4:
            raise ValueError(f"need 4 stages, got channels {channels}, blocks {blocks}")
        self.channels = tuple(int(c) for c in channels)
        c0 = self.channels[0]
        self.stem = nn.Sequential(_down(3, c0 // 2), _down(c0 // 2, c0))
        self.stages = nn.ModuleList()
        for i, (c, n) in enumerate(zip(self.channels, blocks)):
            down = [] if i == 0 else [_down(self.channels[i - 1], c)]
            self.stages.append(nn.Sequential(*down, *[BasicBlock(c) for _ in range(n)]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, C0, H/4, W/4)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


@register_visual_encoder("tiny-conv")
def tiny_conv(
    pretrained: str | None = None, channels: Sequence[int] = (32, 64, 96, 128), blocks: Sequence[int] = (1, 1, 1, 1)
) -> ConvEncoder:
    """A 32/64/96/128-channel convolutional encoder, one residual block per stage (random weights)."""
    model = ConvEncoder(channels, blocks)
    if pretrained:
        model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
    return model
