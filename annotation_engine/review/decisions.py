"""Finished reviews (a Label Studio JSON export) -> one decision per reviewed target.

A task's data names its target exactly (``key``, ``target``). Of a task's annotations the last
one submitted with a ``verdict`` counts (a cancelled, skipped or unfinished one does not); a task
with none is not reviewed. A reviewer's answer without a stroke or a text leaves the mask or the
expression as it was (a reviewer for whom nothing matches rejects). A decision is plain JSON
(a COCO RLE for a mask), so that the reviewed version's identity can be hashed from it.
"""

from __future__ import annotations

import logging
from typing import Any

from annotation_engine.review.labeling import ACCEPT, REJECT, BrushError, read_result
from shards.rle import mask_to_rle

log = logging.getLogger(__name__)


def _last_verdict(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [
        a
        for a in annotations
        if not a.get("was_cancelled")
        and any(r.get("from_name") == "verdict" and (r.get("value") or {}).get("choices") for r in a.get("result", []))
    ]
    return max(done, key=lambda a: (a.get("updated_at") or "", a.get("id") or 0), default=None)


def task_decision(task: dict[str, Any], sizes: dict[str, tuple[int, int]], who: dict[Any, str], project: str):
    """One exported task -> its decision (None: not reviewed, or not one of our tasks).

    Args:
        task: the task as Label Studio exports it (data, annotations).
        sizes: sample key -> (height, width) of its image.
        who: Label Studio user id -> the reviewer's e-mail.
        project: the project's name.

    Raises:
        BrushError: a mask that is not of the image's size or does not decode.
    """
    data = task.get("data") or {}
    key, target = data.get("key"), data.get("target")
    ann = _last_verdict(task.get("annotations") or [])
    if ann is None or key not in sizes or target is None:
        return None
    h, w = sizes[key]
    r = read_result(ann["result"], h, w)
    if r["verdict"] not in (ACCEPT, REJECT):
        return None
    by = ann.get("completed_by")
    by = by.get("email") if isinstance(by, dict) else who.get(by, str(by))
    d = {
        "key": key,
        "target": int(target),
        "verdict": r["verdict"],
        "by": by,
        "at": ann.get("updated_at") or ann.get("created_at"),
        "task": task.get("id"),
        "project": project,
    }
    if r["mask"] is not None:  # no stroke at all: the mask stands (reject says "nothing matches")
        d["mask"] = dict(mask_to_rle(r["mask"]))
    if r["text"] is not None:
        d["text"] = r["text"]
    return d


def read_decisions(
    tasks: list[dict[str, Any]], sizes: dict[str, tuple[int, int]], who: dict[Any, str], project: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every exported task -> (decisions, problems): a task whose answer cannot be read (a mask
    of another size) is named in ``problems`` and left out, not a reason to stop the import."""
    decisions, problems = [], []
    for task in tasks:
        try:
            d = task_decision(task, sizes, who, project)
        except BrushError as e:
            problems.append(f"task {task.get('id')}: {e}")
            continue
        if d is not None:
            decisions.append(d)
    return decisions, problems
