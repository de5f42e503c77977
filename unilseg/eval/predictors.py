"""Where predictions come from: a model checkpoint, or PNG masks saved by another tool.

A predictor is called with (sample, item) and returns the (H, W) prediction at the image's
own size (float32 probabilities in [0, 1], or a bool mask), or None when it has none
(a missing file). `threshold` is the default binarisation of what it returns. A predictor
with `batch_size` > 1 also has `predict_batch(pairs)`, which the runner feeds that many
(sample, item) pairs at a time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.errors import MissingInputError, UniLSegError

log = logging.getLogger(__name__)

PNG_THRESHOLD = 0.5  # saved maps: foreground where value / 255 > 0.5 (0/255 masks: any value works)


class EvalError(UniLSegError):
    """Inputs that cannot be scored as asked; the message names the target(s)."""


def read_prediction_png(path: str | os.PathLike, item_id: str) -> np.ndarray:
    """Reads a saved prediction.

    Accepted: 8-bit grayscale 0/255 masks or probability maps (value / 255; a file holding
    only 0 and 1 is read that way too, with a warning), 1-bit PNGs, palette PNGs with
    indices 0/1, 16-bit maps (value / 65535), and RGB(A) PNGs whose channels are equal.

    Returns:
        np.ndarray: (H, W) bool mask, or float32 map in [0, 1].

    Raises:
        EvalError: unreadable file or a colour image, naming the target.
    """
    try:
        with Image.open(path) as im:
            im.load()
            mode, arr = im.mode, np.asarray(im)
    except Exception as e:  # PIL raises many types for corrupt data
        raise EvalError(f"target {item_id}: cannot read prediction {path}: {type(e).__name__}: {e}") from e
    if mode == "1":
        return arr.astype(bool)
    if arr.ndim == 3:
        if mode in ("LA", "La"):
            arr = arr[..., 0]
        elif not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise EvalError(
                f"target {item_id}: prediction {path} is a colour image ({mode}); save a "
                "grayscale PNG (0/255 mask or probability map)"
            )
        else:
            arr = arr[..., 0]
    if mode == "P":
        if arr.size and arr.max() > 1:
            raise EvalError(f"target {item_id}: prediction {path} is a palette PNG with indices above 1")
        return arr.astype(bool)  # palette indices 0/1: a mask
    if arr.dtype == np.uint8 and arr.size and arr.max() == 1:
        # ambiguous: most likely a 0/1 mask saved as 8-bit, which reads as probabilities <= 1/255
        log.warning(
            "prediction %s holds only 0 and 1: read as probabilities 0 and 1/255 (empty); save 0/1 masks as 0/255", path
        )
    scale = 255.0 if arr.dtype == np.uint8 else 65535.0
    return np.clip(arr.astype(np.float32) / scale, 0.0, 1.0)


class ModelPredictor:
    """Predicts with a checkpoint: ours (carries its config) or the released file with a preset."""

    kind = "checkpoint"
    needs_images = True

    def __init__(
        self,
        checkpoint: str,
        preset: str | None = None,
        device: str | None = None,
        batch_size: int = 16,
    ):
        # torch and the model are imported here, not at the top: scoring saved PNGs needs
        # neither, and torch's import costs seconds
        import torch

        from unilseg.model.loading import load_model

        self.batch_size = max(1, int(batch_size))  # expressions per forward pass
        self.model = load_model(checkpoint, preset)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.threshold = float(self.model.config.threshold)
        self.describe = {"checkpoint": str(checkpoint), "preset": preset, "device": self.device}

    def __call__(self, sample: Any, item: Any) -> np.ndarray:
        from unilseg.model.predict import predict_probs

        return predict_probs(self.model, sample.rgb, item.text)

    def predict_batch(self, pairs: list[tuple[Any, Any]]) -> list[np.ndarray]:
        """[(sample, item)] -> their predictions, in one forward pass."""
        from unilseg.model.predict import predict_probs_batch

        return predict_probs_batch(self.model, [s.rgb for s, _ in pairs], [it.text for _, it in pairs])


class PngPredictor:
    """Reads ``DIR/<item id>.png`` saved by another tool; None when the file is missing."""

    kind = "predictions"
    needs_images = False
    threshold = PNG_THRESHOLD

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        if not self.dir.is_dir():
            raise MissingInputError(f"predictions directory {self.dir} does not exist")
        self.describe = {"predictions": str(self.dir)}

    def __call__(self, sample: Any, item: Any) -> np.ndarray | None:
        path = self.dir / f"{item.id}.png"
        return read_prediction_png(path, item.id) if path.exists() else None
