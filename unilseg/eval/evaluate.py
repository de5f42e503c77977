"""`evaluate`: run a model (or read saved PNG masks) over a shard split and score it.

One item per target (``texts="first"``: its first text, id ``<sample key>_<target index>``)
or per (target, text) (``texts="all"``: RefCOCO's protocol, id ``<target id>_<text index>``);
ids come from shards.keys. Each prediction is made, or read, at the image's original
resolution; a saved mask of another size is an error naming the target, never resized.
Items are grouped by task and each group is scored by its metric family (families.py).
Predictions are kept compressed (RLE, or a
zlib'd 8-bit map for SOD) and decoded lazily by the metrics, so memory stays flat over a
10k-expression split. Predictions come from predictors.py (a checkpoint or saved PNGs);
metrics.json, report.md and overlays.png are written by report.py and overlays.py.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.errors import UniLSegError
from shards import storage
from shards.integrity import check_split, guarded
from shards.keys import expression_id, target_id
from shards.layout import resolve_split_dir
from shards.reader import DecodedSample, ShardReader
from shards.rle import mask_to_rle, rle_to_mask
from unilseg.eval import overlays, report
from unilseg.eval.config import TEXT_MODES, EvalConfig
from unilseg.eval.families import MISSING_RULE, family_of, missing_stand_in
from unilseg.eval.metrics_referring import per_sample_iou
from unilseg.eval.predictors import EvalError, ModelPredictor, PngPredictor

log = logging.getLogger(__name__)

MAX_LISTED = 20  # ids listed in errors and in metrics.json per kind of problem


@dataclass
class EvalItem:
    """One scored expression.

    Attributes:
        id (str): target id, or expression id when every text is scored.
        key (str): sample key; target_index / text_index: positions in the sample.
        text (str): the expression given to the model.
        task, granularity, source (str): copied from the target.
        height, width (int): the ground truth's (= image's) size.
        gt (dict | None): ground-truth RLE, None for a no-target expression.
        pred (Any): the stored prediction (RLE dict, or a _Map for SOD maps).
        iou (float): per-sample IoU at the run's threshold.
        missing (bool): no prediction was found; `pred` is the stand-in that scores it as wrong.
    """

    id: str
    key: str
    target_index: int
    text_index: int
    text: str
    task: str
    granularity: str
    source: str
    height: int
    width: int
    gt: dict[str, Any] | None
    pred: Any = None
    iou: float = math.nan
    missing: bool = False


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class _Map:
    """An 8-bit probability map, zlib-compressed (the form SOD maps are saved in)."""

    shape: tuple[int, int]
    data: bytes

    @classmethod
    def from_probs(cls, probs: np.ndarray) -> _Map:
        u8 = np.asarray(probs, np.float32) * 255.0 + 0.5 if probs.dtype != np.bool_ else probs * 255.0
        return cls(tuple(probs.shape), zlib.compress(np.clip(u8, 0, 255).astype(np.uint8).tobytes(), 1))

    def probs(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]."""
        return np.frombuffer(zlib.decompress(self.data), np.uint8).reshape(self.shape).astype(np.float32) / 255.0


def _store(pred: np.ndarray, continuous: bool, threshold: float) -> Any:
    if continuous:
        return _Map.from_probs(pred)
    return mask_to_rle(pred if pred.dtype == np.bool_ else pred > threshold)


def decode_pred(stored: Any) -> np.ndarray:
    """A stored prediction -> (H, W) bool mask, or float32 map for SOD."""
    return stored.probs() if isinstance(stored, _Map) else rle_to_mask(stored)


def pred_mask(item: EvalItem, threshold: float) -> np.ndarray:
    """The item's prediction as a (H, W) bool mask (SOD maps binarised at threshold)."""
    p = decode_pred(item.pred)
    return p if p.dtype == np.bool_ else p > threshold


class _Lazy(Sequence):
    """Decodes entries on access, so metrics see full arrays one sample at a time."""

    def __init__(self, entries: list[Any], decode: Callable[[Any], Any]):
        self.entries, self.decode = entries, decode

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):  # type: ignore[override]
        return self.decode(self.entries[i])


def _decode_gt(rle: dict[str, Any] | None) -> np.ndarray | None:
    return None if rle is None else rle_to_mask(rle)


# ----------------------------------------------------------------------------- the run


def _expressions(reader: ShardReader, texts: str, decode: bool) -> Iterator[tuple[DecodedSample, EvalItem]]:
    for sample in guarded(reader.samples(decode_images=decode), reader.dir):  # a damaged shard: one line
        for ti, t in enumerate(sample.targets):
            h, w = t.mask["size"] if t.mask is not None else (sample.image.height, sample.image.width)
            for xi in range(1 if texts == "first" else len(t.texts)):
                iid = target_id(sample.key, ti) if texts == "first" else expression_id(sample.key, ti, xi)
                yield (
                    sample,
                    EvalItem(
                        iid, sample.key, ti, xi, t.texts[xi], t.task, t.granularity, t.source, int(h), int(w), t.mask
                    ),
                )


def _predicted(pairs: Iterator[tuple[DecodedSample, EvalItem]], predictor: Any) -> Iterator[tuple[Any, ...]]:
    """(sample, item) -> (sample, item, prediction); `batch_size` pairs per call when the predictor batches."""
    size = int(getattr(predictor, "batch_size", 1))
    if size <= 1:
        for sample, item in pairs:
            yield sample, item, predictor(sample, item)
        return
    while chunk := list(islice(pairs, size)):
        yield from ((s, it, p) for (s, it), p in zip(chunk, predictor.predict_batch(chunk)))


@dataclass
class Collected:
    """What one pass over a split produced."""

    items: list[EvalItem] = field(default_factory=list)
    missing: list[tuple[str, str, bool]] = field(default_factory=list)  # (id, task, no target)
    truncated: bool = False
    multi_text_targets: int = 0  # targets with more than one text (matters for texts="first")
    sources: set[str] = field(default_factory=set)


def collect(
    split_dir: Path | str,
    predictor: Any,
    threshold: float,
    texts: str = "first",
    limit: int | None = None,
    progress: bool = True,
    skip_missing: bool = False,
) -> Collected:
    """Predicts (or reads) every expression of a split and stores it with its IoU.

    A missing prediction (a saved PNG that is not there) is recorded in ``missing`` and is
    never a success: it is scored as the stand-in that is wrong in every metric of its family
    (families.missing_stand_in; an empty mask would be a correct rejection of a no-target
    expression). With ``skip_missing`` it is left out of the score instead.

    Raises:
        EvalError: predictions whose size differs from their image's (all listed, up to
            MAX_LISTED), unreadable PNGs, or no prediction at all.
    """
    if texts not in TEXT_MODES:
        raise UniLSegError(f"texts must be one of {TEXT_MODES}, got {texts!r}")
    reader = ShardReader(split_dir)
    total = reader.info.get("counts", {}).get("targets") if texts == "first" else None
    if limit is not None:
        total = min(limit, total) if total is not None else limit
    out, size_errors = Collected(), []
    stream = _expressions(reader, texts, predictor.needs_images)
    predicted = _predicted(islice(stream, limit), predictor)
    for sample, item, pred in tqdm(predicted, total=total, disable=not progress, desc="eval", unit="expr"):
        problem = _record(out, sample, item, pred, threshold, skip_missing)
        if problem:
            size_errors.append(problem)
    if limit is not None and next(stream, None) is not None:
        out.truncated = True
    _check_collected(out, size_errors, skip_missing, split_dir)
    return out


def _record(
    out: Collected, sample: DecodedSample, item: EvalItem, pred: Any, threshold: float, skip_missing: bool
) -> str | None:
    """Stores one expression's prediction and IoU in ``out`` (a missing one as its stand-in,
    or left out with ``skip_missing``); returns a size mismatch instead of storing it."""
    if item.text_index == 0 and len(sample.targets[item.target_index].texts) > 1:
        out.multi_text_targets += 1
    out.sources.add(item.source)
    family = family_of(item.task)
    if pred is None:
        gt = _decode_gt(item.gt)
        out.missing.append((item.id, item.task, gt is None or not gt.any()))
        if skip_missing:
            return None
        pred = missing_stand_in(gt, (item.height, item.width), family.continuous)
        item.missing = True
    if pred.shape != (item.height, item.width):
        return (
            f"{item.id}: prediction is {pred.shape[1]}x{pred.shape[0]} (w x h), the image is {item.width}x{item.height}"
        )
    item.pred = _store(pred, family.continuous, threshold)
    gt = _decode_gt(item.gt)
    item.iou = float(per_sample_iou([pred], [gt], threshold=threshold)[0])
    out.items.append(item)
    return None


def _check_collected(out: Collected, size_errors: list[str], skip_missing: bool, split_dir: Path | str) -> None:
    """Raises EvalError for predictions of the wrong size, or when there is nothing to score."""
    if size_errors:
        more = f" ... and {len(size_errors) - MAX_LISTED} more" if len(size_errors) > MAX_LISTED else ""
        raise EvalError(
            f"{len(size_errors)} prediction(s) differ in size from their image (metrics never "
            f"resize; save masks at the original resolution): " + "; ".join(size_errors[:MAX_LISTED]) + more
        )
    found = len(out.items) - (0 if skip_missing else len(out.missing))
    if found == 0:  # no file at all: a naming mistake rather than a model that predicts nothing
        hint = f"; expected files named <target id>.png, e.g. {out.missing[0][0]}.png" if out.missing else ""
        raise EvalError(f"nothing to score in {split_dir}: {len(out.missing)} prediction(s) missing{hint}")


def score(items: list[EvalItem]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Groups items by task and runs each group's metric family.

    Returns:
        tuple: (task -> metrics, task -> details such as per-class IoU).
    """
    groups: dict[str, list[EvalItem]] = {}
    for it in items:
        groups.setdefault(it.task, []).append(it)
    metrics, details = {}, {}
    for task in sorted(groups):
        members = groups[task]
        preds = _Lazy([it.pred for it in members], decode_pred)
        gts = _Lazy([it.gt for it in members], _decode_gt)
        metrics[task], details[task] = family_of(task).score(preds, gts, members)
    return metrics, details


def evaluate(
    data: str,
    out: str,
    *,
    checkpoint: str | None = None,
    predictions: str | None = None,
    progress: bool = True,
    **settings: Any,
) -> dict:
    """Scores a model, or saved PNG masks, on a shard split and writes the report.

    Args:
        data: a dataset dir (then DATA/split is read) or a split dir; a local path or URL.
        out: report dir (a local path or URL); gets metrics.json, report.md and overlays.png
            (written locally, then published: shards.storage.staged_output_dir).
        checkpoint: our checkpoint, or the released UniLSeg-20 .pth (with the `preset` setting);
            a local path or URL.
        predictions: local dir of ``<id>.png`` masks instead of a model (exactly one of the two).
        progress: show a progress bar.
        **settings: EvalConfig fields (split, texts, limit, threshold, benchmark, overlay_k,
            preset, device); an unknown one fails. ``texts="all"`` scores every text (id
            ``<target id>_<text index>``), as RefCOCO counts; a ``limit`` means nothing is
            compared with published numbers (the set is not the benchmark's).

    Returns:
        dict: task -> metric name -> value (fractions; NaN where undefined). With
        ``texts="all"``, metrics.json also holds ``first_text``: the same metrics over each
        target's first text only (a subset of the same predictions).

    Raises:
        ShardError: the split is damaged (a missing, resized or corrupt shard; an odd member).
    """
    cfg = EvalConfig.from_dict(settings)
    split, limit, texts = cfg.split, cfg.limit, cfg.texts
    threshold, overlay_k = cfg.threshold, cfg.overlay_k
    _check_arguments(cfg, checkpoint, predictions)  # bad arguments fail before a model is loaded
    split_dir = resolve_split_dir(data, split)
    check_split(split_dir)  # a missing or resized shard fails before a model is loaded
    predictor = (
        ModelPredictor(checkpoint, cfg.preset, cfg.device) if checkpoint is not None else PngPredictor(predictions)
    )
    thr = predictor.threshold if threshold is None else float(threshold)
    got = collect(split_dir, predictor, thr, texts, limit, progress, cfg.skip_missing)
    metrics, details = score(got.items)
    # every text scored: the first text of each target is a subset of the same predictions
    first_text = score([it for it in got.items if it.text_index == 0])[0] if texts == "all" else None
    with storage.staged_output_dir(out) as out_dir:
        sheet = _write_overlays(split_dir, got.items, out, out_dir, overlay_k, thr)
        run_info = _run_info(cfg, split_dir, predictor, thr, got, sheet)
        report.write_report(out_dir, metrics, details, got.items, got.missing, run_info, first_text)
    return metrics


def _check_arguments(cfg: EvalConfig, checkpoint: str | None, predictions: str | None) -> None:
    """A model or predictions, not both; preset and device only with a model; a known benchmark."""
    if (checkpoint is None) == (predictions is None):
        raise UniLSegError("give exactly one of checkpoint (a model) or predictions (a dir of PNG masks)")
    if (cfg.preset or cfg.device) and checkpoint is None:
        raise UniLSegError("preset and device go with a checkpoint")
    report.parse_benchmark(cfg.benchmark)


def _write_overlays(
    split_dir: str,
    items: list[EvalItem],
    out: str,
    out_dir: Path,
    overlay_k: int,
    thr: float,
) -> dict | None:
    """The best/worst overlay sheet in the staged ``out_dir``; its record names where it is published."""
    drawn = [it for it in items if not it.missing]  # a stand-in is no prediction to look at
    sheet = overlays.write_best_worst(
        split_dir,
        drawn,
        out_dir / report.OVERLAYS,
        overlay_k,
        lambda it: pred_mask(it, thr),
        lambda it: _decode_gt(it.gt),
    )
    if sheet is not None:
        sheet["path"] = str(storage.join(out, report.OVERLAYS))  # where it is published, not staged (a URL)
    return sheet


def _run_info(cfg: EvalConfig, split_dir: str, predictor: Any, thr: float, got: Collected, sheet: dict | None) -> dict:
    """metrics.json's record of how the run went: split, predictor, protocol, what was missing."""
    texts, limit, benchmark = cfg.texts, cfg.limit, cfg.benchmark
    return {
        "split_dir": str(split_dir),
        "split": storage.name(split_dir),
        "dataset": storage.name(storage.parent(split_dir)),
        "predictor": {"kind": predictor.kind, **predictor.describe},
        "threshold": thr,
        "texts": texts,
        "limit": limit,
        "truncated": got.truncated,
        "multi_text_targets": got.multi_text_targets,
        "sources": sorted(got.sources),
        "benchmark_arg": benchmark,
        "overlays": sheet,
        "missing_counted_as": "skipped" if cfg.skip_missing else "wrong",
        "missing_rule": "left out of the score (--skip-missing)" if cfg.skip_missing else MISSING_RULE,
    }
