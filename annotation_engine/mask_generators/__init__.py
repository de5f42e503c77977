"""Mask generators: an RGB image -> region proposals (mask + scores [+ texts]).

Each module registers its classes in ``annotation_engine.registry.MASK_GENERATORS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Proposal:
    """One proposed region of the working image.

    Attributes:
        mask (np.ndarray): (H, W) bool mask at the working resolution.
        scores (dict[str, float]): generator scores (predicted_iou, stability_score, ...).
        texts (list[str] | None): expressions that already refer to the mask (mask sources
            driven by expressions); None lets the captioner name it.
    """

    mask: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)
    texts: list[str] | None = None
