"""Refinement of the pixel features beyond the released model's 1/4 resolution (`head.upsample`).

The released model matches the query against pixel features at S/4 and upsamples the logits
bilinearly: objects of a few feature cells lose their outline (a 25-px shape at S = 128 is
6 cells wide, and even the ground truth through that path scores 0.86 mIoU). Each step here
doubles the pixel features' resolution and fuses in a light convolutional stem of the input
image at the new resolution, where the edges are:

    x = up2(x) + fuse_k(concat(up2(x), stem_k(image)))      (B, mask_dim, S/2 or S)

The query is then matched against the refined features, so the logits come out at S/2 (one
step) or S (two). Not part of the paper preset (upsample = 0 builds nothing).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import conv_bn_relu


def _stem(stem_dim: int, stride: int) -> nn.Sequential:
    """(B, 3, S, S) -> (B, stem_dim, S/stride, S/stride): strided 3x3 conv + 3x3 conv, BN + ReLU each."""
    return nn.Sequential(
        nn.Conv2d(3, stem_dim, 3, stride, 1, bias=False),
        nn.BatchNorm2d(stem_dim),
        nn.ReLU(inplace=True),
        conv_bn_relu(stem_dim, stem_dim, 3, 1),
    )


class PixelUpsampler(nn.Module):
    """(B, mask_dim, S/4, S/4) pixel features + the input image -> (B, mask_dim, S/4 * 2^steps, ...).

    Args:
        mask_dim (int): channels of the pixel features (kept).
        steps (int): x2 steps, 1 (to S/2) or 2 (to S).
        stem_dim (int): channels of each image stem.
    """

    def __init__(self, mask_dim: int, steps: int, stem_dim: int = 16) -> None:
        super().__init__()
        if steps not in (1, 2):
            raise ValueError(f"steps must be 1 or 2, got {steps}")
        self.stems = nn.ModuleList([_stem(stem_dim, 2 ** (2 - k)) for k in range(1, steps + 1)])
        self.fuse = nn.ModuleList([conv_bn_relu(mask_dim + stem_dim, mask_dim, 3, 1) for _ in range(steps)])

    def forward(self, pixel: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """pixel (B, C, h, w), images (B, 3, 4h, 4w) -> (B, C, h * 2^steps, w * 2^steps)."""
        x = pixel
        for stem, fuse in zip(self.stems, self.fuse):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            s = stem(images)
            if s.shape[-2:] != x.shape[-2:]:  # an input side that is not a multiple of 4 rounds differently
                s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + fuse(torch.cat([x, s], dim=1))
        return x
