"""Tokenizers that turn expressions into the fixed-length id tensors the text encoders expect.

`ClipTokenizer` is open_clip's `SimpleTokenizer` (CLIP's byte-level BPE, vocabulary
`bpe_simple_vocab_16e6.txt.gz` shipped with open_clip), set up to give exactly the ids of the
tokenizer UniLSeg's released code uses (OpenAI CLIP's `simple_tokenizer.py`): text cleaned
(ftfy, HTML unescaped twice, whitespace collapsed, lowercased); SOT (49406), BPE ids, EOT
(49407), then zeros; an overlong expression cut to `context_length` ids with the last one
set to EOT. One difference is adapted: OpenAI's tokenizer reads the literal strings
`<|startoftext|>` and `<|endoftext|>` in a text as SOT/EOT, open_clip's reads
`<start_of_text>` / `<end_of_text>` instead; we follow OpenAI's (tests pin both cases).

open_clip's tokenizer module is loaded on its own, without the open_clip package:
`import open_clip` builds its model zoo (torchvision, timm, ...), seconds more than the
tokenizer module alone (BENCHMARKS.md, "Import times"), which needs only ftfy, regex, numpy
and torch.

`HFTokenizer` wraps a Hugging Face tokenizer loaded from a model directory (BERT-style
encoders; pad id 0, so `ids == 0` is the padding mask for every tokenizer here).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol

import regex
import torch

SOT_ID = 49406  # <|startoftext|>
EOT_ID = 49407  # <|endoftext|>
# OpenAI CLIP's pre-tokenizer: its two special strings first, then words, digits, symbols.
_OPENAI_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
)
_OPENAI_SPECIAL = {"<|startoftext|>": SOT_ID, "<|endoftext|>": EOT_ID}


class Tokenizer(Protocol):
    context_length: int

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """texts -> (B, context_length) int64 ids, 0 = padding."""


@functools.lru_cache(maxsize=1)
def open_clip_tokenizer_module() -> ModuleType:
    """open_clip's ``tokenizer`` module, loaded without importing the open_clip package.

    The package import is what costs seconds (module docstring); if open_clip is already
    imported, or a future tokenizer.py cannot load alone, the package's own module is used.
    """
    if "open_clip.tokenizer" in sys.modules:
        return sys.modules["open_clip.tokenizer"]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the CLIP tokenizer comes from open-clip-torch: pip install open-clip-torch")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("unilseg._open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except ImportError:
        import open_clip.tokenizer as module
    return module


def default_bpe_path() -> Path:
    """open_clip's copy of CLIP's BPE merges."""
    return Path(open_clip_tokenizer_module().default_bpe())


class ClipTokenizer:
    """CLIP BPE tokenizer with a fixed context (17 for UniLSeg), ids as OpenAI's tokenizer gives.

    Args:
        context_length (int): ids per expression, SOT and EOT included.
        bpe_path (str | None): merges file; None = open_clip's shipped copy.
    """

    def __init__(self, context_length: int = 17, bpe_path: str | None = None) -> None:
        if context_length < 2:
            raise ValueError("context_length must hold at least SOT and EOT")
        self.context_length = context_length
        oc = open_clip_tokenizer_module()
        self._bpe = oc.SimpleTokenizer(bpe_path or oc.default_bpe(), context_length=context_length)
        if (self._bpe.sot_token_id, self._bpe.eot_token_id) != (SOT_ID, EOT_ID):
            raise ValueError(
                f"{bpe_path}: not CLIP's vocabulary (SOT/EOT ids {self._bpe.sot_token_id}, {self._bpe.eot_token_id})"
            )
        # OpenAI's special strings instead of open_clip's: pattern, BPE cache (a special string
        # is one token, never split) and vocabulary entries (the same two ids).
        self._bpe.pat = _OPENAI_PATTERN
        self._bpe.cache = {s: s for s in _OPENAI_SPECIAL}
        self._bpe.encoder.update(_OPENAI_SPECIAL)

    def encode(self, text: str) -> list[int]:
        """BPE ids of the cleaned text, without SOT/EOT."""
        return self._bpe.encode(text)

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """texts -> (B, context_length) int64: SOT, ids, EOT, zeros; overlong cut with last = EOT."""
        return self._bpe([texts] if isinstance(texts, str) else list(texts))


class HFTokenizer:
    """A Hugging Face tokenizer from a local model directory, padded/truncated to context_length.

    Args:
        path (str): directory holding tokenizer.json / vocab.txt (load from a directory: with
            transformers 5, `vocab_file=` is silently ignored).
        context_length (int): ids per expression.
    """

    def __init__(self, path: str, context_length: int = 17) -> None:
        # transformers takes seconds to import (BENCHMARKS.md, "Import times"): paid only where it is used
        from transformers import AutoTokenizer

        self.context_length = context_length
        self.tok = AutoTokenizer.from_pretrained(path)
        if self.tok.pad_token_id != 0:
            raise ValueError(f"tokenizer at {path} pads with id {self.tok.pad_token_id}; the model masks id 0")

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        enc = self.tok(
            texts, padding="max_length", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return enc["input_ids"].long()
