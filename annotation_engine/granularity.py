"""Granularity: a mask that lies inside a larger one becomes a part of it.

Mask i is a part of mask j when at least ``containment`` of i lies inside j and i covers at
most ``max_part_ratio`` of j's area; among several such wholes the smallest is the parent
("the wheel of the car", not "of the street").
"""

from __future__ import annotations

import numpy as np

from annotation_engine.regions import pairwise_containment, pairwise_iou


def assign_parents(masks: list[np.ndarray], containment: float = 0.9, max_part_ratio: float = 0.6) -> list[int | None]:
    """(N,) (H, W) bool masks -> for each, the index of its parent mask or None.

    Args:
        masks (list[np.ndarray]): masks of one image (same size).
        containment (float): fraction of a mask inside another that makes it a part.
        max_part_ratio (float): largest part-to-whole area ratio.
    """
    n = len(masks)
    if n == 0:
        return []
    inside = pairwise_containment(masks)  # (N, N): inside[i, j] = |i & j| / |i|
    areas = np.array([float(m.sum()) for m in masks])
    parents: list[int | None] = []
    for i in range(n):
        wholes = [
            j for j in range(n) if j != i and inside[i, j] >= containment and areas[i] <= max_part_ratio * areas[j]
        ]
        parents.append(min(wholes, key=lambda j: areas[j]) if wholes else None)
    return parents


def part_or_instance(parent: int | None) -> str:
    """The shards-format granularity of a target: "part" when nested, else "instance"."""
    return "instance" if parent is None else "part"


def touching(masks: list[np.ndarray], radius: int = 2) -> list[list[int]]:
    """For each mask, the indices of the masks within ``radius`` pixels of it (neighbours)."""
    grown = []
    for m in masks:
        g = m.copy()
        for _ in range(radius):
            h = g.copy()
            h[1:] |= g[:-1]
            h[:-1] |= g[1:]
            h[:, 1:] |= g[:, :-1]
            h[:, :-1] |= g[:, 1:]
            g = h
        grown.append(g)
    iou = pairwise_iou(grown)
    return [[j for j in range(len(masks)) if j != i and iou[i, j] > 0] for i in range(len(masks))]
