"""``evaluate_engine``: run an engine config over a labeled split and score its proposals.

    read the split (ground truth; images exported to OUT/images/<key>.<ext>)
      -> annotation_engine.driver.annotate_images(OUT/images, OUT/proposals)   (Ray actors,
         the same pipeline as `unilseg annotate`: crashes quarantined, done images skipped)
      -> read OUT/proposals/<split> back, paired with the ground truth by image sha256
      -> recall (COCOeval), judges, expressions -> OUT/report.md, metrics.json, pictures,
         proposals.json, ground_truth.json

Nothing is written into the split. OUT/proposals is kept (a later run of the same engine
version on the same OUT skips every image: only scoring runs again, and
`unilseg shards preview OUT/proposals` shows what the engine made); OUT/images is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from annotation_engine.engine_config import load_engine_config
from annotation_engine.image_task import NO_TARGETS
from annotation_engine.quality import coco, expressions, judges, pictures, recall, report
from annotation_engine.quality.coco import ImageRecord, Region, granularity_group
from annotation_engine.quality.config import EngineEvalConfig
from common.errors import UniLSegError
from shards import storage
from shards.images import decode_image
from shards.integrity import check_split, guarded
from shards.layout import resolve_split_dir
from shards.manifest import read_quarantine
from shards.reader import ShardReader
from shards.rle import rle_to_mask
from unilseg.eval.overlays import best_and_worst

log = logging.getLogger(__name__)
Loc = storage.PathOrLocation  # a local path, URL or storage.Location
IMAGES_DIR, PROPOSALS_DIR = "images", "proposals"
GROUND_TRUTH_JSON, PROPOSALS_JSON = "ground_truth.json", "proposals.json"


def evaluate_engine(
    engine: str | dict,
    data: Loc,
    out: Loc,
    *,
    grounding: Loc | None = None,
    progress: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Scores an engine config against a labeled split; writes the report into ``out``.

    Args:
        engine: what ``unilseg annotate --engine`` takes: a preset name, a YAML file, a mapping.
        data: a dataset dir (DATA/split is read) or a split dir; a local path, URL or
            storage.Location.
        out: report dir, a local path, URL or storage.Location (report.md, metrics.json, recall.png, scores.png,
            proposals.png, proposals.json, ground_truth.json; the engine's shards in proposals/).
        grounding: a UniLSeg checkpoint that reads the generated expressions back (the
            ``preset`` setting names the config of the released file); without it, expressions
            are compared with the ground truth's by MiniLM similarity.
        progress: show annotate's progress bar.
        **settings: EngineEvalConfig fields (split, limit, actors, preset, rank_by, examples,
            ray_address); an unknown one fails.

    Returns:
        dict: the metrics (as in metrics.json, NaN where undefined).

    Raises:
        UniLSegError: a split with no ground-truth masks, a grounding file that is no
            checkpoint, a damaged split (ShardError), an unknown engine: one line each, raised
            before the engine runs.
    """
    cfg = EngineEvalConfig.from_dict(settings)
    t0 = time.perf_counter()
    split_dir = resolve_split_dir(data, cfg.split)
    check_split(split_dir)
    load_engine_config(engine)  # an unknown preset or a bad YAML fails before anything is read
    if grounding is None and cfg.preset is not None:
        raise UniLSegError("--preset goes with --grounding (the model that reads the expressions)")
    base = storage.absolute(out)
    images_dir, proposals = storage.join(base, IMAGES_DIR), storage.join(base, PROPOSALS_DIR)
    images, exported = _read_truth(split_dir, cfg.limit, images_dir)
    try:
        if not any(im.truth for im in images):
            raise UniLSegError(f"{split_dir}: no targets with a mask: nothing to score proposals against")
        judge = _expression_judge(grounding, cfg.preset)  # a bad checkpoint fails before the engine runs
        summary = _annotate(engine, images_dir, proposals, cfg, progress)
    finally:
        _remove_export(images_dir, exported)
    _attach_proposals(images, storage.join(proposals, cfg.split), summary["engine_version"])
    metrics = _score(images, cfg, judge, split_dir)
    metrics["run"] = _run_info(engine, split_dir, cfg, grounding, summary, time.perf_counter() - t0)
    _write(out, images, metrics, split_dir, cfg.examples)
    return metrics


def _expression_judge(grounding: str | None, preset: str | None) -> Callable[..., dict[str, Any]]:
    """How expressions are scored. A grounding model is loaded (and so checked) now; MiniLM is
    found now and loaded in a thread while the engine runs (importing torch and transformers
    takes seconds that would otherwise add to the evaluation's overhead over annotate)."""
    if grounding is None:
        from unilseg.model.hf_text import minilm_path

        minilm_path()  # the package is missing: one line now, not after the engine ran
        pool = ThreadPoolExecutor(1, thread_name_prefix="load-minilm")
        embed = pool.submit(expressions.SentenceEmbedder)
        pool.shutdown(wait=False)
        return lambda images, matches, split_dir: _similarity(images, matches, embed.result())
    model = expressions.load_grounding(grounding, preset)
    return lambda images, matches, split_dir: _grounding(images, split_dir, model, grounding)


def _read_truth(split_dir: Loc, limit: int | None, images_dir: Loc) -> tuple[list[ImageRecord], list]:
    """The split's images (the first ``limit``) with their ground truth; each image's stored
    bytes exported to ``images_dir/<key>.<ext>`` for the engine. Returns (records, exported)."""
    storage.makedirs(images_dir)
    images, exported = [], []
    for sample in guarded(ShardReader(split_dir).samples(decode_images=False), split_dir):
        if limit is not None and len(images) >= limit:
            break
        rec = ImageRecord(
            key=sample.key,
            image_id=len(images) + 1,
            width=sample.image.width,
            height=sample.image.height,
            sha256=hashlib.sha256(sample.image_bytes).hexdigest(),
            truth=[
                Region(
                    t.mask,
                    list(t.texts),
                    granularity_group(t.task, t.granularity),
                    task=t.task,
                    granularity=t.granularity,
                )
                for t in sample.targets
                if t.mask is not None
            ],
        )
        ext = "png" if sample.image_bytes[:4] == b"\x89PNG" else "jpg"
        loc = storage.join(images_dir, f"{sample.key}.{ext}")
        storage.write_bytes(loc, sample.image_bytes)
        images.append(rec)
        exported.append(loc)
    if not images:
        raise UniLSegError(f"{split_dir}: no images")
    return images, exported


def _remove_export(images_dir: Loc, exported: list) -> None:
    """Removes the exported images (object stores have no directories to remove)."""
    for loc in exported:
        storage.remove(loc)
    if (p := storage.local_path(images_dir)) is not None:
        with contextlib.suppress(OSError):  # not empty: someone else's files, kept
            os.rmdir(p)


def _annotate(
    engine: Any,
    images_dir: Loc,
    dataset: Loc,
    cfg: EngineEvalConfig,
    progress: bool,
) -> dict[str, Any]:
    """The engine over the exported images, through `unilseg annotate`'s pipeline."""
    from annotation_engine.driver import annotate_images  # Ray: imported when the engine runs

    return annotate_images(
        images_dir,
        dataset,
        progress=progress,
        engine=engine,
        split=cfg.split,
        actors=cfg.actors,
        ray_address=cfg.ray_address,
    )


def _attach_proposals(images: list[ImageRecord], split: Loc, version: str) -> None:
    """The engine's targets of this version, paired with the images by sha256; quarantine reasons."""
    by_sha: dict[str, list[ImageRecord]] = {}
    for im in images:
        by_sha.setdefault(im.sha256, []).append(im)
    found = set()
    if storage.exists(storage.join(split, "dataset.json")):
        for s in guarded(ShardReader(split).samples(decode_images=False), split):
            if s.image.sha256 in by_sha and s.key.endswith(version[:12]):
                found.add(s.image.sha256)
                for im in by_sha[s.image.sha256]:
                    im.proposals = [Region(t.mask, list(t.texts), scores=dict(t.scores)) for t in s.targets if t.mask]
    for r in read_quarantine(split):
        sha = r.get("sha256")
        if sha in by_sha and sha not in found and r.get("engine_version") == version and r.get("kind") != NO_TARGETS:
            for im in by_sha[sha]:
                im.quarantined = f"{r.get('kind')}: {r.get('reason')}"


def _score(images: list[ImageRecord], cfg: EngineEvalConfig, judge: Callable, split_dir: Loc) -> dict[str, Any]:
    """Every figure; ``_figures`` holds what the files need beside the metrics."""
    matches = recall.best_matches(images)
    res = coco.results(images, cfg.rank_by)
    if cfg.rank_by is not None:
        carried = sum(cfg.rank_by in p.scores for im in images for p in im.proposals)
        if carried < len(res):  # those rank by the engine's order: AR@1 and AR@10 mean something else
            log.warning(
                "%d of %d proposals carry no %r score: they rank by the engine's order",
                len(res) - carried,
                len(res),
                cfg.rank_by,
            )
    masks, curves = recall.mask_metrics(images, res, matches)
    flat = [(p, m) for im, ms in zip(images, matches) for p, m in zip(im.proposals, ms)]
    scores = judges.judge_scores([p.scores for p, _ in flat], [iou for _, (iou, _) in flat])
    points = {
        name: ([p.scores[name] for p, _ in flat if name in p.scores], [m[0] for p, m in flat if name in p.scores])
        for name in scores
    }
    return {
        "masks": masks,
        "scores": scores,
        "expressions": judge(images, matches, split_dir),
        "images": _image_counts(images),
        "_figures": {"results": res, "curves": curves, "points": points, "matches": matches},
    }


def _write(
    out: Loc,
    images: list[ImageRecord],
    metrics: dict[str, Any],
    split_dir: Loc,
    examples: int,
) -> None:
    """report.md, metrics.json, the pictures and the COCO files, published into ``out``."""
    fig = metrics.pop("_figures")
    with storage.staged_output_dir(out) as out_dir:
        (out_dir / GROUND_TRUTH_JSON).write_text(json.dumps(coco.ground_truth(images)))
        (out_dir / PROPOSALS_JSON).write_text(json.dumps(fig["results"]))
        pictures.recall_curve(fig["curves"], recall.IOU_THRESHOLDS, out_dir / "recall.png")
        pictures.score_scatter(fig["points"], out_dir / "scores.png")
        metrics["run"]["sheet"] = _sheet(images, fig["matches"], split_dir, out_dir / "proposals.png", examples)
        report.write_report(out_dir, metrics)


def _decoded(split_dir: Loc, keys: set[str]) -> dict[str, np.ndarray]:
    """key -> (H, W, 3) uint8 image, for the given keys, in one pass over the split."""
    found: dict[str, np.ndarray] = {}
    if not keys:
        return found
    for s in guarded(ShardReader(split_dir).samples(decode_images=False), split_dir):
        if s.key in keys:
            found[s.key] = decode_image(s.image_bytes)
            if len(found) == len(keys):
                break
    return found


def _sheet(images: list[ImageRecord], matches: list, split_dir: Loc, out: Path, k: int) -> dict[str, Any] | None:
    """proposals.png: the k best and k worst proposals with their best-matching ground truth."""
    items = [
        {"id": f"{im.key}_{i}", "key": im.key, "iou": iou, "im": im, "p": p, "gt": j}
        for im, ms in zip(images, matches)
        for i, (p, (iou, j)) in enumerate(zip(im.proposals, ms))
    ]
    best, worst = best_and_worst([it["iou"] for it in items], k) if items else ([], [])
    drawn = [items[i] for i in best + worst]
    rgbs = _decoded(split_dir, {it["key"] for it in drawn})
    for it in drawn:
        it["pred"] = rle_to_mask(it["p"].rle)
        it["gt"] = None if it["gt"] is None else rle_to_mask(it["im"].truth[it["gt"]].rle)
        it["expression"] = it["p"].texts[0] if it["p"].texts else ""
    return pictures.best_worst_sheet(items, rgbs, out, k, best, worst)


def _grounding(images: list[ImageRecord], split_dir: Loc, model: Any, checkpoint: Loc) -> dict[str, Any]:
    """Hit rates of generated and ground-truth expressions read back by a grounding model."""
    generated, reference = expressions.HitCounter(model), expressions.HitCounter(model)
    by_key = {im.key: im for im in images}
    for s in guarded(ShardReader(split_dir).samples(decode_images=False), split_dir):
        im = by_key.get(s.key)
        if im is None:
            continue
        rgb = decode_image(s.image_bytes)
        for p in im.proposals:
            generated.add(rgb, p.texts, rle_to_mask(p.rle))
        for t in im.truth:
            reference.add(rgb, t.texts, rle_to_mask(t.rle))
    return {
        "method": "grounding",
        "checkpoint": str(checkpoint),
        "generated": generated.summary(),
        "reference": reference.summary(),
    }


def _similarity(images: list[ImageRecord], matches: list, embed: Any) -> dict[str, Any]:
    """MiniLM similarity of matched proposals' expressions to their target's texts."""
    pairs = [
        (p.texts, im.truth[j].texts)
        for im, ms in zip(images, matches)
        for p, (iou, j) in zip(im.proposals, ms)
        if j is not None and iou >= recall.MATCH_IOU
    ]
    return {"method": "minilm", "similarity": expressions.similarity(pairs, embed)}


def _run_info(
    engine: Any, split_dir: Loc, cfg: EngineEvalConfig, grounding: Loc | None, summary: dict, seconds: float
) -> dict[str, Any]:
    """metrics.json's record of the run."""
    stats = summary.get("stats", {})
    return {
        "engine": engine if isinstance(engine, (str, dict)) else str(engine),
        "engine_name": load_engine_config(engine).name,
        "engine_version": summary["engine_version"],
        "split_dir": str(split_dir),
        "dataset": storage.name(storage.parent(split_dir)),
        "split": storage.name(split_dir),
        "grounding": None if grounding is None else str(grounding),  # a Location's URL, never its options
        "settings": asdict(cfg),
        "limit": cfg.limit,
        "rank_by": cfg.rank_by,
        "seconds": round(seconds, 3),
        "annotate_seconds": stats.get("total_s"),
        "annotated_now": summary.get("written", 0),
        "already_done": summary.get("skipped", 0),
    }


def _image_counts(images: list[ImageRecord]) -> dict[str, Any]:
    q = [im for im in images if im.quarantined]
    return {
        "evaluated": len(images),
        "with_proposals": sum(bool(im.proposals) for im in images),
        "no_proposals": sum(not im.proposals and not im.quarantined for im in images),
        "quarantined": len(q),
        "quarantine": [
            {"key": im.key, "kind": im.quarantined.split(":", 1)[0], "reason": im.quarantined.split(": ", 1)[-1]}
            for im in q
        ],
    }
