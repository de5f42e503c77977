"""Any transformers image-to-text model (BLIP, BLIP-2, GIT, ...) as a region captioner.

The model is loaded once, by hub id or from a local directory (``save_pretrained`` output),
with ``AutoProcessor`` and the first Auto class that accepts its config. Region crops (the
mask's box grown by some context, the surroundings slightly dimmed so the region stands
out) are captioned in batches with ``generate``; the captions are cleaned into noun
phrases, which the attribute writer then makes referential ("a dog" -> "the dog on the left").
"""

from __future__ import annotations

import os

import numpy as np

from annotation_engine.captioners.attributes import clean_caption
from annotation_engine.regions import crop_region
from annotation_engine.registry import CAPTIONERS
from common.errors import UniLSegError

# Tried in order: the first Auto class that knows the model's config loads it.
_AUTO_CLASSES = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM")


def load_image_to_text(model: str, device: str = "cpu", revision: str | None = None):
    """(processor, model in eval mode) for a hub id or a local directory.

    Raises:
        ValueError: no Auto class of transformers accepts the model's config.
    """
    # transformers takes seconds to import (BENCHMARKS.md, "Import times"): paid only where it is used
    import transformers
    from transformers import AutoProcessor

    transformers.utils.logging.disable_progress_bar()
    kw = {"revision": revision} if revision else {}
    processor = AutoProcessor.from_pretrained(model, **kw)
    errors = []
    for name in _AUTO_CLASSES:
        auto = getattr(transformers, name, None)
        if auto is None:
            continue
        try:
            net = auto.from_pretrained(model, **kw)
            break
        except ValueError as e:  # "Unrecognized configuration class ..."
            errors.append(f"{name}: {e}")
    else:
        raise UniLSegError(f"{model} is not an image-to-text model transformers can load: {'; '.join(errors)}")
    return processor, net.to(device).eval()


@CAPTIONERS.register("hf")
class HFCaptioner:
    """Captions region crops with a transformers image-to-text model.

    Args:
        model (str): hub id ("Salesforce/blip-image-captioning-large") or local directory.
        revision (str | None): hub revision (branch, tag or commit) for reproducible runs.
        batch_size (int): crops per ``generate`` call.
        context (float): margin around each mask's box, as a fraction of the box size.
        dim_background (float): how much the surroundings of the mask are greyed (0..1).
        max_new_tokens (int): caption length limit in tokens.
        num_beams (int): beam search width (1 = greedy).
        prompt (str | None): conditional prefix for models that take one (BLIP: "a picture of").
        device (str): torch device.
    """

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        batch_size: int = 8,
        context: float = 0.2,
        dim_background: float = 0.4,
        max_new_tokens: int = 20,
        num_beams: int = 1,
        prompt: str | None = None,
        device: str = "cpu",
    ):
        self.model_id, self.revision = model, revision
        self.batch_size, self.context, self.dim_background = int(batch_size), float(context), float(dim_background)
        self.max_new_tokens, self.num_beams, self.prompt = int(max_new_tokens), int(num_beams), prompt
        self.device = device
        self.processor, self.model = load_image_to_text(model, device, revision)

    def identity(self) -> dict[str, str]:
        import transformers

        ident = self.model_id if not os.path.isdir(self.model_id) else os.path.abspath(self.model_id)
        return {
            "captioner": "hf",
            "captioner_model": ident + (f"@{self.revision}" if self.revision else ""),
            "captioner_version": f"transformers-{transformers.__version__}",
        }

    def caption_crops(self, crops: list[np.ndarray]) -> list[str]:
        """Raw captions of (h, w, 3) uint8 crops, batched."""
        import torch

        out: list[str] = []
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            kw = {"text": [self.prompt] * len(batch)} if self.prompt else {}
            inputs = self.processor(images=batch, return_tensors="pt", **kw).to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)
            texts = self.processor.batch_decode(ids, skip_special_tokens=True)
            if self.prompt:  # conditional models repeat the prompt
                texts = [t[len(self.prompt) :] if t.lower().startswith(self.prompt.lower()) else t for t in texts]
            out.extend(texts)
        return out

    def describe(self, rgb: np.ndarray, masks: list[np.ndarray], attrs=None) -> list[str | None]:
        """(H, W, 3) uint8 + (H, W) bool masks -> a cleaned caption per mask (None if unreadable)."""
        if not masks:
            return []
        crops = [crop_region(rgb, m, self.context, self.dim_background) for m in masks]
        return [clean_caption(t) for t in self.caption_crops(crops)]
