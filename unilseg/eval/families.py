"""Metric families: which metric function scores which task.

Items are grouped by task and each group is scored by its family: res and any task without
a family of its own -> referring, gres -> gres, part -> part, semantic -> semantic (class
from "all <class>"), sod/cod -> sod. A family registers the tasks it scores; a task claimed
twice fails at import.

A missing prediction is never a success: `missing_stand_in` gives, per family, the
prediction that is wrong in every metric of that family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from common.registry import Registry
from unilseg.eval.metrics_referring import gres_metrics, part_metrics, referring_metrics
from unilseg.eval.metrics_semantic import semantic_metrics, semantic_per_class_iou
from unilseg.eval.metrics_sod import sod_metrics

if TYPE_CHECKING:
    from unilseg.eval.evaluate import EvalItem

DEFAULT_FAMILY = "referring"  # auto, instance, open_vocab, ... are scored as referring segmentation


@dataclass(frozen=True)
class MetricFamily:
    """How one kind of task is scored.

    Attributes:
        name (str): family name, also the report's table layout.
        score (Callable): (preds, gts, items) -> (metrics dict, details dict).
        continuous (bool): scores the probability map itself (SOD), not a binary mask.
    """

    name: str
    score: Callable[[Sequence[Any], Sequence[Any], list[EvalItem]], tuple[dict[str, float], dict[str, Any]]]
    continuous: bool = False


FAMILIES = Registry("metric family")
TASK_FAMILY: dict[str, str] = {}  # task -> family name, filled by register_family


def register_family(name: str, tasks: Sequence[str], continuous: bool = False):
    """Decorator registering a scoring function for some tasks; a duplicate name or task fails."""

    def deco(fn):
        taken = [t for t in tasks if t in TASK_FAMILY]
        if taken:
            raise ValueError(f"tasks {taken} already have a metric family")
        FAMILIES.register(name)(MetricFamily(name, fn, continuous))
        TASK_FAMILY.update({t: name for t in tasks})
        return fn

    return deco


def family_of(task: str) -> MetricFamily:
    """The metric family scoring a task (referring for tasks without their own)."""
    return FAMILIES.get(TASK_FAMILY.get(task, DEFAULT_FAMILY))


# what a missing prediction is scored as, in words, for reports (--skip-missing leaves it out instead)
MISSING_RULE = (
    "scored as wrong in every metric: a target expression as an empty mask (IoU 0, a miss for "
    "Prec@X, T-acc and the cumulative I/U), a no-target expression as a whole-image false "
    "positive (gIoU 0, not a correct rejection for N-acc, its area added to cIoU's union), a "
    "SOD/COD map as the inverse of its ground truth (MAE 1 on that image)"
)


def missing_stand_in(gt: np.ndarray | None, shape: tuple[int, int], continuous: bool) -> np.ndarray:
    """The prediction a missing one is scored as: wrong in every metric of its family.

    "Nothing predicted" is right for a no-target expression (GRES counts an empty mask as a
    correct rejection) and, in SOD, scores a better MAE than many real maps; so the stand-in
    depends on the ground truth. A no-target expression (gt None or empty) gets the whole
    image: a false positive in N-acc, gIoU 0, its area added to cIoU's union. A target gets an
    empty mask in the binary families: IoU 0, no Prec@X, a miss in T-acc (the inverse of the
    target would count as "found" there), I = 0 with |G| added to oIoU/cIoU's union. A SOD/COD
    map gets the inverse of its ground truth: MAE 1, F-measure 0 above the lowest threshold,
    the lowest S-measure (an empty map would still score MAE = the object's share of the image).

    Args:
        gt: (H, W) bool ground truth, or None for a no-target expression.
        shape: (H, W) of the image.
        continuous: the family scores probability maps (SOD/COD), not binary masks.

    Returns:
        np.ndarray: (H, W) float32 map in {0, 1} when continuous, else a bool mask.
    """
    target = np.zeros(shape, bool) if gt is None else np.asarray(gt, bool)
    if not target.any():
        pred = np.ones(shape, bool)
    else:
        pred = ~target if continuous else np.zeros(shape, bool)
    return pred.astype(np.float32) if continuous else pred


@register_family("referring", ["res"])
def _referring(preds, gts, items):
    return referring_metrics(preds, gts), {}


@register_family("gres", ["gres"])
def _gres(preds, gts, items):
    return gres_metrics(preds, gts), {}


@register_family("part", ["part"])
def _part(preds, gts, items):
    kinds = ["part" if it.granularity == "part" else "object" for it in items]
    return part_metrics(preds, gts, kinds), {}


def semantic_class(text: str) -> str:
    """The class a semantic expression asks for: "all <class>" -> "<class>" (else the text)."""
    text = text.strip()
    return text[4:].strip() if text.lower().startswith("all ") else text


@register_family("semantic", ["semantic"])
def _semantic(preds, gts, items):
    classes = [semantic_class(it.text) for it in items]
    per_class = semantic_per_class_iou(preds, gts, classes)
    return semantic_metrics(preds, gts, classes), {"per_class_iou": per_class}


@register_family("sod", ["sod", "cod"], continuous=True)
def _sod(preds, gts, items):
    return sod_metrics(preds, gts), {}
