"""A UniLSeg checkpoint as a mask source for given expressions.

Given the expressions in the engine config, it predicts one mask per expression with
``unilseg.model.loading.load_model`` + ``unilseg.model.predict`` and emits proposals that
already carry their text, so the captioner leaves them as they are.
"""

from __future__ import annotations

import numpy as np

from annotation_engine.engine_config import path_identity
from annotation_engine.mask_generators import Proposal
from annotation_engine.registry import MASK_GENERATORS
from common.errors import UniLSegError


@MASK_GENERATORS.register("unilseg")
class UniLSegSource:
    """One mask per expression from a UniLSeg model.

    Args:
        checkpoint (str): our training checkpoint, or the released UniLSeg-20 .pth (with preset).
        expressions (list[str]): what to segment in every image ("the person", "all dogs").
        preset (str | None): model preset, required for the released checkpoint only.
        threshold (float | None): probability threshold (None: the model's own, 0.35).
        device (str): torch device.
    """

    def __init__(
        self,
        checkpoint: str,
        expressions: list[str],
        preset: str | None = None,
        threshold: float | None = None,
        device: str = "cpu",
    ):
        # torch and the model are imported here, not at the top: the registry imports every
        # generator module on first lookup, and a weight-free engine should not pay seconds
        # of torch import for a source it never builds
        from unilseg.model.loading import load_model

        if not expressions or not all(isinstance(e, str) and e.strip() for e in expressions):
            raise UniLSegError("the unilseg mask source needs a non-empty list of expressions")
        self.checkpoint, self.expressions, self.preset = checkpoint, list(expressions), preset
        self.model = load_model(checkpoint, preset).to(device)
        self.threshold = self.model.config.threshold if threshold is None else float(threshold)

    def identity(self) -> dict[str, str]:
        return {
            "generator": "unilseg",
            "generator_model": f"unilseg:{path_identity(self.checkpoint)}",
            "generator_version": "unilseg-predict-1",
        }

    def generate(self, rgb: np.ndarray) -> list[Proposal]:
        """(H, W, 3) uint8 RGB -> one proposal per expression whose mask is not empty.

        Scores: ``mean_prob`` (mean foreground probability inside the mask) and
        ``confident_fraction`` (share of mask pixels with probability > 0.8).
        """
        from unilseg.model.predict import predict_probs  # no_grad inside; see __init__ for the import

        out = []
        for text in self.expressions:
            probs = predict_probs(self.model, rgb, text)  # (H, W) float32
            mask = probs > self.threshold
            if not mask.any():
                continue
            inside = probs[mask]
            out.append(
                Proposal(
                    mask,
                    {"mean_prob": float(inside.mean()), "confident_fraction": float((inside > 0.8).mean())},
                    texts=[text],
                )
            )
        return out
