"""BERT-style text encoder from a local Hugging Face model directory (registered as `bert`).

Word features are the last hidden states; the sentence embedding is the [CLS] state or the
masked mean, projected by `proj` to `sentence_dim`. Ids of 0 are padding (BERT's [PAD]).
transformers is imported only when this encoder is built.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shards.settings import SettingsError
from unilseg.tokenizers import HFTokenizer

from .registry import register_text_encoder


class HFTextEncoder(nn.Module):
    """Any `transformers.AutoModel` encoder: ids (B, L) -> words (B, L, hidden), sentence (B, sentence_dim).

    Args:
        path (str): local model directory (config.json + weights + tokenizer files).
        context_length (int): ids per expression.
        sentence_dim (int): width of the projected sentence embedding.
        pooling (str): "cls" (first token) or "mean" (mean over non-padding tokens).
    """

    def __init__(self, path: str, context_length: int = 17, sentence_dim: int = 512, pooling: str = "cls") -> None:
        super().__init__()
        # transformers takes seconds to import (3.5 s measured here): paid only where it is used
        from transformers import AutoModel

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.model = AutoModel.from_pretrained(path)
        self.pooling, self.context_length = pooling, context_length
        self.word_dim = self.model.config.hidden_size
        self.sentence_dim = sentence_dim
        self.proj = nn.Linear(self.word_dim, sentence_dim)

    def forward(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token_ids (B, L) -> words (B, L, hidden), sentence (B, sentence_dim)."""
        keep = (token_ids != 0).long()  # (B, L)
        words = self.model(input_ids=token_ids, attention_mask=keep).last_hidden_state  # (B, L, hidden)
        if self.pooling == "cls":
            pooled = words[:, 0]
        else:
            k = keep.unsqueeze(-1).to(words.dtype)
            pooled = (words * k).sum(1) / k.sum(1).clamp(min=1.0)
        return words, self.proj(pooled)


def _hf_tokenizer(text_cfg):
    if not text_cfg.pretrained:
        raise SettingsError("text encoder 'bert' needs text.pretrained = a local model directory")
    return HFTokenizer(text_cfg.pretrained, text_cfg.context_length)


@register_text_encoder("bert", tokenizer=_hf_tokenizer)
def bert(pretrained: str | None = None, context_length: int = 17, sentence_dim: int = 512,
         pooling: str = "cls") -> HFTextEncoder:
    """A BERT-style encoder (e.g. all-MiniLM-L6-v2) loaded from the directory `pretrained`."""
    if not pretrained:
        raise ValueError("text encoder 'bert' needs pretrained = a local model directory")
    return HFTextEncoder(pretrained, context_length, sentence_dim, pooling)
