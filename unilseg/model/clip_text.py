"""CLIP text tower with OpenAI's parameter names (`token_embedding`, `positional_embedding`,
`transformer.resblocks.N.{attn,ln_1,mlp.c_fc,mlp.c_proj,ln_2}`, `ln_final`, `text_projection`,
`logit_scale`), so the released checkpoint's `backbone.*` text entries load by name.

Only the first `context_length` (17) rows of the 77-row position table are used and the
causal mask is built for that length. Word features are taken after `ln_final` without
projection; the sentence embedding is the feature at the largest token id (EOT) times
`text_projection`. Registered as `clip-b16` (ViT-B/16's tower) and `tiny-clip`.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections import OrderedDict

import torch
import torch.nn as nn

from unilseg.tokenizers import ClipTokenizer

from .registry import register_text_encoder


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation OpenAI's CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm causal self-attention + QuickGELU MLP; sequence-first (L, B, C)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """`resblocks` stack (name kept for the checkpoint)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        for blk in self.resblocks:
            x = blk(x, attn_mask)
        return x


class CLIPTextEncoder(nn.Module):
    """CLIP text transformer: token ids (B, L) -> words (B, L, width), sentence (B, embed_dim).

    Args:
        width (int): transformer width (= word_dim).
        layers (int): transformer blocks.
        heads (int): attention heads.
        embed_dim (int): output width of text_projection (= sentence_dim).
        vocab_size (int): BPE vocabulary size (49408 for CLIP).
        max_positions (int): rows of the learned position table (77 for CLIP).
        context_length (int): token ids per expression actually fed (<= max_positions).
    """

    def __init__(
        self,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        embed_dim: int = 512,
        vocab_size: int = 49408,
        max_positions: int = 77,
        context_length: int = 17,
    ) -> None:
        super().__init__()
        if context_length > max_positions:
            raise ValueError(f"context_length {context_length} > position table rows {max_positions}")
        self.word_dim, self.sentence_dim, self.context_length = width, embed_dim, context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(max_positions, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        # kept so the checkpoint loads strictly; unused here, so it takes no gradient (DDP-safe)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)), requires_grad=False)
        causal = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", causal, persistent=False)
        self._init_parameters()

    def _init_parameters(self) -> None:
        # OpenAI's initialisation
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        w, n = self.transformer.width, self.transformer.layers
        proj_std, attn_std, fc_std = w**-0.5 * (2 * n) ** -0.5, w**-0.5, (2 * w) ** -0.5
        for blk in self.transformer.resblocks:
            nn.init.normal_(blk.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(blk.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(blk.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(blk.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=w**-0.5)

    def forward(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token_ids (B, L) with L = context_length -> words (B, L, width), sentence (B, embed_dim)."""
        if token_ids.shape[1] != self.context_length:
            raise ValueError(f"expected {self.context_length} token ids per text, got {token_ids.shape[1]}")
        x = self.token_embedding(token_ids) + self.positional_embedding[: token_ids.shape[1]]  # (B, L, C)
        x = self.transformer(x.transpose(0, 1), self.attn_mask.to(x.dtype)).transpose(0, 1)
        words = self.ln_final(x)  # (B, L, C)
        eot = words[torch.arange(words.shape[0], device=words.device), token_ids.argmax(dim=-1)]  # (B, C)
        return words, eot @ self.text_projection

    def load_pretrained(self, path: str) -> None:
        """Loads the text tower from an OpenAI CLIP file (TorchScript archive like ViT-B-16.pt, or a
        state dict); image-tower entries (`visual.*`) and metadata scalars are dropped."""
        if _is_torchscript(path):
            with warnings.catch_warnings():  # OpenAI released TorchScript; jit.load is its only reader
                warnings.simplefilter("ignore", FutureWarning)
                sd = torch.jit.load(path, map_location="cpu").state_dict()
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            sd = sd.get("state_dict", sd)
        drop = ("input_resolution", "context_length", "vocab_size")
        sd = {k: v for k, v in sd.items() if not k.startswith("visual.") and k not in drop}
        missing, unexpected = self.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise KeyError(f"CLIP text weights {path}: missing {missing}, unexpected {unexpected}")


def _is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files holding a code/ folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n for n in z.namelist())


def _clip_tokenizer(text_cfg):
    return ClipTokenizer(text_cfg.context_length)


def _build(pretrained: str | None, **kw) -> CLIPTextEncoder:
    model = CLIPTextEncoder(**kw)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


@register_text_encoder("clip-b16", tokenizer=_clip_tokenizer)
def clip_b16(pretrained: str | None = None, context_length: int = 17) -> CLIPTextEncoder:
    """CLIP ViT-B/16's text tower: width 512, 12 layers, 8 heads, projection 512x512."""
    return _build(pretrained, width=512, layers=12, heads=8, embed_dim=512, context_length=context_length)


@register_text_encoder("tiny-clip", tokenizer=_clip_tokenizer)
def tiny_clip(pretrained: str | None = None, context_length: int = 17) -> CLIPTextEncoder:
    """A random CLIP-style tower (width 64, 2 layers, 2 heads) on the real CLIP BPE ids."""
    return _build(pretrained, width=64, layers=2, heads=2, embed_dim=64, context_length=context_length)
