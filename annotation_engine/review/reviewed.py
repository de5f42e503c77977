"""A split and people's decisions on some of its targets -> the reviewed split, a new split beside it.

What each target becomes (the original split is never modified):

- **accepted** as it was: kept, its provenance gains ``review`` (verdict, who, when, where);
- **corrected** (a changed mask or text with ``accept``): the person's mask or text; its
  provenance says ``by: human``, with the review and the engine's original (texts, mask,
  source, scores, provenance) kept under ``engine``; its scores (the engine's, for the
  engine's mask) move there too;
- **rejected**: left out, and listed with the reviewer in ``rejected.jsonl`` beside the
  shards; the targets after it in its sample move up one index (``review.target`` keeps a
  reviewed target's index in the source); a sample with no target left is left out whole;
- **not reviewed**: as it was.

Writing is all-or-nothing for readers: the version is identified by a hash of its inputs (the
source's shards and checksums, the decisions); its shards are written under that writer
identity beside the old version's and made the split by ``shards.commit.replace_split``
(dataset.json last). A kill -9 leaves OUT as before or complete, and a second import of the
same decisions finds its version already there and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from typing import Any

from common.errors import UniLSegError
from shards import locks, storage
from shards.commit import remove_others, replace_split
from shards.format import Sample, Target
from shards.manifest import read_dataset_json
from shards.reader import ShardReader
from shards.writer import ShardWriter

VERSION = 1  # bump when the way decisions are applied changes: every reviewed split is rewritten
REJECTED = "rejected.jsonl"
REVIEW_JSON = "review.json"  # what the version was made from (source, project, counts)


def _same(a: Any, b: Any) -> bool:
    return os.fspath(storage.absolute(a)).rstrip("/") == os.fspath(storage.absolute(b)).rstrip("/")


def version_id(source_shards: list[dict[str, Any]], decisions: list[dict[str, Any]]) -> str:
    """The reviewed version's identity: a hash of the source's shards and the decisions."""
    doc = {
        "v": VERSION,
        "source": [(s["name"], s["sha256"]) for s in source_shards],
        "decisions": sorted(decisions, key=lambda d: (d["key"], d["target"])),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _review_record(d: dict[str, Any]) -> dict[str, Any]:
    """What provenance and the rejected list keep of a decision: who, when, where, and the
    target's index in the source split (indices move up past a rejected target)."""
    return {k: d[k] for k in ("verdict", "by", "at", "project", "task", "target") if k in d}


def apply_decision(t: Target, d: dict[str, Any]) -> Target | None:
    """One target after one decision (None: rejected). ``d["mask"]`` is the reviewer's COCO RLE
    and ``d["text"]`` the reviewer's expression, each absent when the answer had none."""
    if d["verdict"] == "reject":
        return None
    mask_changed = d.get("mask") is not None and not _same_mask(d["mask"], t.mask)
    text = (d.get("text") or "").strip()
    text_changed = bool(text) and text != t.texts[0]
    review = _review_record(d)
    if not (mask_changed or text_changed):
        return replace(t, provenance={**t.provenance, "review": {**review, "verdict": "accept"}})
    engine = {"source": t.source, "texts": t.texts, "scores": t.scores, "provenance": t.provenance}
    if mask_changed:
        engine["mask"] = t.mask
    changed = [n for n, c in (("mask", mask_changed), ("texts", text_changed)) if c]
    return replace(
        t,
        texts=[text] if text_changed else t.texts,
        mask=d["mask"] if mask_changed else t.mask,
        scores={} if mask_changed else t.scores,
        provenance={"by": "human", "review": {**review, "verdict": "correct", "changed": changed}, "engine": engine},
    )


def _same_mask(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two COCO RLEs of the same pixels (the counts strings of one mask can differ in form)."""
    if a is None or b is None:
        return a is b
    from shards.rle import rle_to_mask

    return list(a["size"]) == list(b["size"]) and bool((rle_to_mask(a) == rle_to_mask(b)).all())


def image_ext(data: bytes) -> str:
    """The stored image's extension ("jpg" or "png"), from its first bytes."""
    return "jpg" if data[:2] == b"\xff\xd8" else "png"


def _reviewed_samples(split_dir, by_target: dict[tuple[str, int], dict], rejected: list[dict]):
    """The source's samples with the decisions applied (rejected targets appended to ``rejected``).
    Targets after a rejected one move up; a ``parent`` index in a provenance follows its target
    (None when the parent was rejected)."""
    for s in ShardReader(split_dir).samples(decode_images=False):
        kept: list[tuple[int, Target]] = []
        for i, t in enumerate(s.targets):
            d = by_target.get((s.key, i))
            new = t if d is None else apply_decision(t, d)
            if new is None:
                rejected.append({"key": s.key, "target": i, "texts": t.texts, **_review_record(d)})
            else:
                kept.append((i, new))
        moved = {old: new for new, (old, _) in enumerate(kept)}
        targets = [_renumber(t, moved) for _, t in kept]
        if targets:
            yield Sample(s.key, s.image, s.image_bytes, image_ext(s.image_bytes), targets)


def _renumber(t: Target, moved: dict[int, int]) -> Target:
    parent = t.provenance.get("parent")
    if not isinstance(parent, int) or moved.get(parent) == parent:
        return t
    return replace(t, provenance={**t.provenance, "parent": moved.get(parent)})


def write_reviewed(
    split_dir: str | os.PathLike, out: str | os.PathLike, decisions: list[dict[str, Any]], project: str = ""
) -> dict[str, Any]:
    """Writes OUT, the reviewed version of the split; returns what it did.

    Args:
        split_dir: the source split (local path, URL or Location); never modified.
        out: the reviewed split's location (created; an earlier version is replaced).
        decisions: one dict per reviewed target ({"key", "target", "verdict", "by", "at",
            "task", "project", optional "mask" and "text"}: decisions.read_decisions).
        project: the Label Studio project's name (recorded in review.json).

    Returns:
        dict: {"out", "version", "written" (False: this version was already there), "accepted",
        "corrected", "rejected", "samples", "targets"}.

    Raises:
        UniLSegError: OUT is the source split, or a decision names a target the split lacks.
    """
    src, out = storage.normalize(split_dir), storage.normalize(out)
    if _same(src, out):
        raise UniLSegError(f"--out {out} is the split itself: the reviewed version is written beside it")
    info = read_dataset_json(src)
    if not info:
        raise UniLSegError(f"{src} has no dataset.json: not a shard split")
    version = version_id(info["shards"], decisions)
    counts = {v: sum(d["verdict"] == v for d in decisions) for v in ("accept", "reject")}
    result = {"out": str(out), "version": version, "written": False, "decisions": len(decisions), **counts}
    current = read_dataset_json(out)
    if _is_version(out, current, version):
        remove_others(out, f"review_{version}")  # what a kill in the last import's clean-up left (if any)
        return {**result, "samples": current["counts"]["samples"], "targets": current["counts"]["targets"]}
    by_target = {(d["key"], int(d["target"])): d for d in decisions}
    storage.makedirs(out)
    held = locks.lock(out, f"{locks.LOCK_PREFIX}-review")
    try:
        rejected: list[dict[str, Any]] = []
        writer_id = f"review_{version}"
        with ShardWriter(out, writer_id=writer_id, commit=False, skip_existing=False) as w:
            for sample in _reviewed_samples(src, by_target, rejected):
                w.write(sample)
        side = {
            REJECTED: "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rejected).encode(),
            REVIEW_JSON: _review_json(src, info, project, version, decisions, len(rejected)),
        }
        doc = replace_split(out, writer_id, side_files=side)
    finally:
        held.release()
    return {**result, "written": True, "samples": doc["counts"]["samples"], "targets": doc["counts"]["targets"]}


def _review_json(src, info: dict, project: str, version: str, decisions: list[dict], rejected: int) -> bytes:
    doc = {
        "version": version,
        "source": str(src),
        "source_shards": [(s["name"], s["sha256"]) for s in info["shards"]],
        "project": project,
        "decisions": len(decisions),
        "rejected": rejected,
    }
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _is_version(out, current: dict[str, Any], version: str) -> bool:
    """True when OUT is complete and is this version (its shards, review.json and rejected list)."""
    if current.get("status") != "complete":
        return False
    if any(not s["name"].startswith(f"shard-review_{version}-") for s in current.get("shards", [])):
        return False
    try:
        return json.loads(storage.read_bytes(storage.join(out, REVIEW_JSON)))["version"] == version
    except (FileNotFoundError, ValueError, KeyError):
        return False


def reviewed_source(out: str | os.PathLike) -> dict[str, Any] | None:
    """review.json of a reviewed split (None: not one)."""
    try:
        return json.loads(storage.read_bytes(storage.join(out, REVIEW_JSON)))
    except FileNotFoundError:
        return None
