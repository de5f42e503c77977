"""Tiny randomly initialised models saved the way real ones are, for the engine's tests.

Each builder writes into a directory and returns its path, so that tests load the models
through the same code path as hub or local models (HF_HUB_OFFLINE=1, no download).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[DEC]",
    "a",
    "the",
    "dog",
    "cat",
    "man",
    "woman",
    "on",
    "left",
    "right",
    "red",
    "cup",
    "of",
    "coffee",
    "rocket",
    "sofa",
    "face",
    "hair",
    "sky",
    "with",
]


def box(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int]) -> np.ndarray:
    """A (H, W) bool mask, True on rows y0:y1 and columns x0:x1."""
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def photo(name: str = "astronaut", side: int | None = None) -> np.ndarray:
    """A scikit-image bundled photo as (H, W, 3) uint8, optionally resized to a longest side."""
    import skimage.data

    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, -1)
    rgb = rgb[..., :3]
    if side:
        img = Image.fromarray(rgb)
        img.thumbnail((side, side))
        rgb = np.asarray(img)
    return np.ascontiguousarray(rgb)


def save_tiny_blip(path: Path) -> Path:
    """A tiny BLIP captioner (1-layer ViT and text decoder, 32-d) + processor in ``path``."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = BlipConfig(
        vision_config=dict(**small, image_size=32, patch_size=8),
        text_config=dict(
            **small,
            vocab_size=len(WORDS),
            max_position_embeddings=64,
            bos_token_id=WORDS.index("[DEC]"),
            pad_token_id=0,
            sep_token_id=3,
            eos_token_id=3,
        ),
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def save_tiny_clip(path: Path) -> Path:
    """A tiny CLIP (1-layer towers, 32-d) with a byte-level BPE tokenizer of single characters."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(
            **small, vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1
        ),
        vision_config=dict(**small, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(path)
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)
    return path


def save_tiny_unilseg(path: Path) -> Path:
    """A randomly initialised unilseg-tiny saved with unilseg.checkpoint.save_checkpoint."""
    from unilseg.checkpoint import save_checkpoint
    from unilseg.model import build_model

    torch.manual_seed(0)
    return save_checkpoint(path, build_model("unilseg-tiny"))


def save_tiny_git(path: Path) -> Path:
    """A tiny GIT captioner (1-layer towers, 32-d) + processor in ``path``."""
    from transformers import BertTokenizerFast, CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True)
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = GitConfig(
        vision_config=dict(**small, image_size=32, patch_size=8),
        vocab_size=len(WORDS),
        **small,
        max_position_embeddings=64,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    GitForCausalLM(cfg).save_pretrained(path)
    GitProcessor(image_processor=ip, tokenizer=tok).save_pretrained(path)
    return path


def kill_annotation_driver(
    call: str, split: str, shards: int = 2, timeout_s: float = 120, poll_s: float = 0.05, before_kill=None
) -> None:
    """Runs ``annotate_images(<call>)`` in a child process and SIGKILLs it once ``split`` (a local
    path or URL) holds at least ``shards`` finished shards; fails if the run ends first or the
    shards do not come within ``timeout_s`` (a loaded machine starts the child slowly).
    ``before_kill(pid)``, if given, is called with the child's pid just before the kill."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from shards import storage

    code = f"from annotation_engine.driver import annotate_images\nannotate_images({call})\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "RAY_AUTH_MODE": "token"})
    try:
        deadline = time.time() + timeout_s
        while len([n for n in storage.listdir(split) if n.startswith("shard-") and n.endswith(".tar")]) < shards:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(poll_s)
        if before_kill is not None:
            before_kill(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
