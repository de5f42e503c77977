"""Small building blocks shared by the head: conv/linear + BatchNorm + ReLU, stochastic depth.

The Sequential layouts (0 = conv/linear, 1 = BatchNorm, 2 = ReLU) give the released
checkpoint's names (`adapter_1.0.weight`, `adapter_1.1.running_mean`, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def conv_bn_relu(in_dim: int, out_dim: int, kernel_size: int = 1, padding: int = 0) -> nn.Sequential:
    """Conv2d without bias, BatchNorm2d, ReLU: (B, in_dim, H, W) -> (B, out_dim, H, W)."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size, 1, padding, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True)
    )


def linear_bn_relu(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear without bias, BatchNorm1d, ReLU: (B, in_dim) -> (B, out_dim).

    BatchNorm1d in training mode needs more than one sample per batch (PyTorch raises
    "Expected more than 1 value per channel when training" otherwise).
    """
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True))


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability `p`.

    Args:
        p (float): drop probability; kept samples are scaled by 1 / (1 - p).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one coin per sample
        return x * x.new_empty(shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
