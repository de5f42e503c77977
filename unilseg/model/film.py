"""Sentence FiLM in the pixel decoder (`head.film`; not part of the released layout).

The released pixel decoder conditions the visual tokens on the words additively (attention
outputs added to the tokens). Picking out "the blue tree" needs a conjunction: blue AND
tree. FiLM (Perez et al., 2018) scales and shifts every channel by an affine function of the
sentence right before a conv + BN + ReLU, so the ReLU can compute such an AND per pixel;
it is what made small CNNs solve CLEVR's attribute questions. Here one (gamma, beta) pair
per pixel-decoder level, from the sentence embedding:

    x_k <- x_k * (1 + gamma_k(s)) + beta_k(s)          before layer_k (3x3 conv + BN + ReLU)

The projections start at zero, so a fresh model behaves exactly like one without FiLM.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SentenceFiLM(nn.Module):
    """Sentence embedding -> per-level channel scales and shifts.

    Args:
        sentence_dim (int): width of the sentence embedding.
        dim (int): channels modulated at every level (the pixel decoder's conv_dim).
        levels (int): pixel-decoder levels (4).
    """

    def __init__(self, sentence_dim: int, dim: int, levels: int = 4) -> None:
        super().__init__()
        self.proj = nn.ModuleList([nn.Linear(sentence_dim, 2 * dim) for _ in range(levels)])
        for lin in self.proj:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, sentence: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """sentence (B, Ds) -> [(gamma, beta)] per level (stride 4 first), each (B, dim, 1, 1)."""
        out = []
        for lin in self.proj:
            gamma, beta = lin(sentence)[:, :, None, None].chunk(2, dim=1)
            out.append((gamma, beta))
        return out
