"""One-call inference: RGB image + expression -> boolean mask of the image's size."""

from __future__ import annotations

import numpy as np
import torch

from shards.format import check_expression
from unilseg.transforms import letterbox_image, logits_to_probs

from .unilseg import UniLSeg


@torch.no_grad()
def predict_probs(model: UniLSeg, image: np.ndarray, text: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB + expression -> (H, W) float32 foreground probability.

    Runs in eval mode (BatchNorm running stats, no dropout) and restores the previous mode.

    Raises:
        FormatError: an empty or whitespace-only expression (the rule datasets follow too).
    """
    check_expression(text)
    was_training = model.training
    model.eval()
    try:
        size = model.config.input_size
        x, _ = letterbox_image(image, size)
        device = next(model.parameters()).device
        images = torch.from_numpy(x).unsqueeze(0).to(device)  # (1, 3, S, S)
        ids = model.tokenizer(text).to(device)  # (1, L)
        logits = model(images, ids)["logits"]  # (1, 1, s, s): s = S/4, or S/2, S with head.upsample
    finally:
        model.train(was_training)
    return logits_to_probs(logits, image.shape[:2], size)


@torch.no_grad()
def predict_probs_batch(model: UniLSeg, images: list[np.ndarray], texts: list[str]) -> list[np.ndarray]:
    """Many (image, expression) pairs in one forward: [(H_i, W_i, 3) uint8] + [str] -> [(H_i, W_i) float32].

    The same as `predict_probs` on each pair (eval mode: nothing depends on the other pairs),
    with the per-call overhead paid once: several times faster for small models on CPU.
    """
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    if not images:
        return []
    was_training = model.training
    model.eval()
    try:
        size = model.config.input_size
        device = next(model.parameters()).device
        x = torch.from_numpy(np.stack([letterbox_image(im, size)[0] for im in images])).to(device)  # (B, 3, S, S)
        logits = model(x, model.tokenizer(list(texts)).to(device))["logits"]  # (B, 1, s, s)
    finally:
        model.train(was_training)
    return [logits_to_probs(lg, im.shape[:2], size) for lg, im in zip(logits, images)]


def predict(model: UniLSeg, image: np.ndarray, text: str, threshold: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB + expression -> (H, W) bool mask (probability > threshold, the
    model config's by default)."""
    t = model.config.threshold if threshold is None else threshold
    return predict_probs(model, image, text) > t
