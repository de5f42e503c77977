"""Which proposals become targets: area, score thresholds, mask NMS, and a CLIP score.

Scores a proposal does not carry are not thresholded (a superpixel region has no predicted
IoU). Mask NMS keeps, in rank order, every mask that overlaps no kept mask by more than
``nms_iou`` (IoU of the masks themselves, not their boxes).
"""

from __future__ import annotations

import os

import numpy as np

from annotation_engine.engine_config import FilterConfig
from annotation_engine.mask_generators import Proposal
from annotation_engine.regions import crop_region, pairwise_iou


def rank_key(p: Proposal, rank_by: str) -> float:
    """The value that orders proposals (larger first): a score name, or "area"."""
    if rank_by == "area":
        return float(p.mask.sum())
    return float(p.scores.get(rank_by, 0.0))


def mask_nms(masks: list[np.ndarray], iou_thresh: float) -> list[int]:
    """Greedy NMS over masks already sorted best first.

    Args:
        masks (list[np.ndarray]): (H, W) bool masks, best first.
        iou_thresh (float): a mask whose IoU with a kept one exceeds this is dropped.

    Returns:
        list[int]: indices of the kept masks, in order.
    """
    iou = pairwise_iou(masks)
    kept: list[int] = []
    for i in range(len(masks)):
        if all(iou[i, j] <= iou_thresh for j in kept):
            kept.append(i)
    return kept


def filter_proposals(proposals: list[Proposal], cfg: FilterConfig) -> list[Proposal]:
    """Area limits, score thresholds, rank order, mask NMS, then at most cfg.max_targets."""
    if not proposals:
        return []
    total = proposals[0].mask.size
    out = []
    for p in proposals:
        frac = float(p.mask.sum()) / total
        if not cfg.min_area <= frac <= cfg.max_area:
            continue
        if any(name in p.scores and p.scores[name] < thresh for name, thresh in cfg.min_scores.items()):
            continue
        out.append(p)
    out.sort(key=lambda p: rank_key(p, cfg.rank_by), reverse=True)
    kept = mask_nms([p.mask for p in out], cfg.nms_iou)
    return [out[i] for i in kept][: cfg.max_targets]


class ClipScorer:
    """Text-region agreement from a transformers CLIP model (hub id or local directory).

    The score of a (region, text) pair is the cosine similarity of CLIP's embeddings of the
    region crop (surroundings dimmed) and of the text, in [-1, 1].

    Args:
        model (str): e.g. "openai/clip-vit-base-patch32" or a ``save_pretrained`` folder.
        device (str): torch device.
        context (float): margin around the mask's box, as a fraction of its size.
    """

    def __init__(self, model: str, device: str = "cpu", context: float = 0.1):
        # transformers takes seconds to import (BENCHMARKS.md, "Import times"): paid only where it is used
        import transformers
        from transformers import CLIPModel, CLIPProcessor

        transformers.utils.logging.disable_progress_bar()
        self.model_id, self.device, self.context = model, device, context
        self.processor = CLIPProcessor.from_pretrained(model)
        self.model = CLIPModel.from_pretrained(model).to(device).eval()

    def identity(self) -> dict[str, str]:
        return {"clip_model": os.path.abspath(self.model_id) if os.path.isdir(self.model_id) else self.model_id}

    def score(self, rgb: np.ndarray, masks: list[np.ndarray], texts: list[str]) -> list[float]:
        """(H, W, 3) uint8 + N masks + N texts -> N cosine similarities."""
        import torch

        if not masks:
            return []
        crops = [crop_region(rgb, m, self.context, dim_background=0.7) for m in masks]
        inputs = self.processor(text=texts, images=crops, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        img = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        return [float(v) for v in (img * txt).sum(-1)]
