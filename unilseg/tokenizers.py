"""Tokenizers that turn expressions into the fixed-length id tensors the text encoders expect.

`ClipTokenizer` is CLIP's byte-level BPE (vocabulary `bpe_simple_vocab_16e6.txt.gz`, shipped
inside the open_clip package; found without importing open_clip, whose import costs
seconds). Text is cleaned like CLIP's: ftfy, HTML unescaped twice, whitespace collapsed,
lowercased. Ids are SOT (49406), BPE ids, EOT (49407), then zeros; an overlong expression is
cut to `context_length` ids with the last one set to EOT, as the UniLSeg demo does.

`HFTokenizer` wraps a Hugging Face tokenizer loaded from a model directory (BERT-style
encoders; pad id 0, so `ids == 0` is the padding mask for every tokenizer here).
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import ftfy
import regex
import torch

SOT_ID = 49406  # <start_of_text>
EOT_ID = 49407  # <end_of_text>


class Tokenizer(Protocol):
    context_length: int

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """texts -> (B, context_length) int64 ids, 0 = padding."""


def default_bpe_path() -> Path:
    """open_clip's copy of CLIP's BPE merges, located without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the CLIP vocabulary ships with open-clip-torch: pip install open-clip-torch")
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE vocabulary not found at {path}")
    return path


def clean_text(text: str) -> str:
    """ftfy fix, HTML unescape (twice, as CLIP does), collapse whitespace, lowercase."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


@functools.lru_cache(maxsize=None)
def _byte_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table (256 entries)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@functools.lru_cache(maxsize=4)
def _load_vocab(bpe_path: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """(token -> id, merge pair -> rank) as CLIP builds them: 256 bytes, 256 bytes + '</w>',
    48894 merges, then SOT and EOT."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    base = list(_byte_to_unicode().values())
    vocab = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
    return {tok: i for i, tok in enumerate(vocab)}, {m: i for i, m in enumerate(merges)}


class ClipTokenizer:
    """CLIP BPE tokenizer with a fixed context (17 for UniLSeg).

    Args:
        context_length (int): ids per expression, SOT and EOT included.
        bpe_path (str | None): merges file; None = open_clip's shipped copy.
    """

    _pattern = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    def __init__(self, context_length: int = 17, bpe_path: str | None = None) -> None:
        if context_length < 2:
            raise ValueError("context_length must hold at least SOT and EOT")
        self.context_length = context_length
        self.encoder, self.bpe_ranks = _load_vocab(str(bpe_path or default_bpe_path()))
        self._cache: dict[str, list[str]] = {}

    def _bpe(self, word: str) -> list[str]:
        """Greedy lowest-rank merging of one pre-token (already byte-mapped)."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            rank, best = min((self.bpe_ranks.get(p, float("inf")), i) for i, p in enumerate(zip(parts, parts[1:])))
            if rank == float("inf"):
                break
            first, second = parts[best], parts[best + 1]
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        """BPE ids of the cleaned text, without SOT/EOT."""
        table = _byte_to_unicode()
        ids: list[int] = []
        for tok in self._pattern.findall(clean_text(text)):
            ids.extend(self.encoder[p] for p in self._bpe("".join(table[b] for b in tok.encode("utf-8"))))
        return ids

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """texts -> (B, context_length) int64: SOT, ids, EOT, zeros; overlong cut with last = EOT."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [SOT_ID] + self.encode(text) + [EOT_ID]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length]
                ids[-1] = EOT_ID
            out[i, :len(ids)] = torch.tensor(ids)
        return out


class HFTokenizer:
    """A Hugging Face tokenizer from a local model directory, padded/truncated to context_length.

    Args:
        path (str): directory holding tokenizer.json / vocab.txt (load from a directory: with
            transformers 5, `vocab_file=` is silently ignored).
        context_length (int): ids per expression.
    """

    def __init__(self, path: str, context_length: int = 17) -> None:
        from transformers import AutoTokenizer

        self.context_length = context_length
        self.tok = AutoTokenizer.from_pretrained(path)
        if self.tok.pad_token_id != 0:
            raise ValueError(f"tokenizer at {path} pads with id {self.tok.pad_token_id}; the model masks id 0")

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        enc = self.tok(texts, padding="max_length", truncation=True, max_length=self.context_length,
                       return_tensors="pt")
        return enc["input_ids"].long()
