"""report.md and metrics.json of an engine evaluation (the files; pictures are pictures.py's).

metrics.json:
    masks        recall.py's keys: AR@1, AR@10, AR@100, recall@0.5, recall@0.75,
                 AR@100.small|medium|large, AR@100.object|part|stuff,
                 recall@0.5.object|part|stuff, precision@0.5, recall_curve, iou_thresholds,
                 n_images, n_truth, n_proposals
    scores       judges.py's: score name -> spearman, n, deciles
    expressions  expressions.py's: method "grounding" (generated / reference hit rates) or
                 "minilm" (similarity)
    images       evaluated, with_proposals, no_proposals (the engine found nothing),
                 quarantined (the engine failed or crashed on it: counted as an image with no
                 proposals, so it lowers recall) and the quarantine records
    run          engine, engine version, split, limit, rank_by, grounding, annotate's timings
NaN is written as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METRICS_JSON, REPORT_MD = "metrics.json", "report.md"


def _clean(x: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _masks_md(m: dict[str, Any]) -> list[str]:
    rows = [
        ("AR@1", "recall averaged over IoU 0.50:0.95, best-ranked proposal per image"),
        ("AR@10", "same, top 10 proposals per image"),
        ("AR@100", "same, top 100 proposals per image"),
        ("recall@0.5", "recall at IoU 0.5 (top 100)"),
        ("recall@0.75", "recall at IoU 0.75 (top 100)"),
        ("AR@100.small", "masks < 32^2 px"),
        ("AR@100.medium", "masks 32^2..96^2 px"),
        ("AR@100.large", "masks > 96^2 px"),
        ("AR@100.object", "instance and group targets"),
        ("AR@100.part", "part targets"),
        ("AR@100.stuff", "class, scene and semantic targets"),
        ("precision@0.5", "share of proposals with IoU >= 0.5 against some ground-truth mask"),
    ]
    lines = ["## Masks (class-agnostic, pycocotools COCOeval segm, useCats = 0)", ""]
    lines += ["| metric | value | meaning |", "|---|---|---|"]
    lines += [f"| {k} | {_f(m.get(k))} | {why} |" for k, why in rows]
    lines += [
        "",
        f"{m['n_images']} images, {m['n_truth']} ground-truth masks, {m['n_proposals']} proposals. "
        "A group's AR is COCOeval run on that group's masks alone (every proposal competes); "
        "n/a: the split has no mask of that kind.",
        "",
        "![recall against IoU threshold](recall.png)",
        "",
    ]
    return lines


def _scores_md(scores: dict[str, Any]) -> list[str]:
    lines = ["## Scores as judges of IoU", ""]
    if not scores:
        return lines + ["The engine wrote no scores.", ""]
    lines += [
        "Spearman's rank correlation of each score with the proposal's best IoU against the ground "
        "truth (higher: the score predicts mask quality better), and mean IoU by score decile "
        "(lowest scores first).",
        "",
        "| score | n | Spearman | " + " | ".join(f"D{i}" for i in range(1, 11)) + " |",
        "|---|---|---|" + "---|" * 10,
    ]

    def strongest_first(kv: tuple[str, dict]) -> tuple[bool, float]:
        rho = kv[1]["spearman"]  # None where undefined (NaN): listed last
        return rho is None, -(rho or 0.0)

    for name, s in sorted(scores.items(), key=strongest_first):
        dec = [_f(d["mean_iou"]) for d in s["deciles"]] + [""] * (10 - len(s["deciles"]))
        lines.append(f"| {name} | {s['n']} | {_f(s['spearman'])} | " + " | ".join(dec) + " |")
    return lines + ["", "![score against IoU](scores.png)", ""]


def _expressions_md(e: dict[str, Any]) -> list[str]:
    lines = ["## Expressions", ""]
    if e["method"] == "grounding":
        g, r = e["generated"], e["reference"]
        lines += [
            f"A grounding model ({e['checkpoint']}) read each expression and predicted a mask; a hit is "
            "IoU >= 0.5 with the expression's own mask.",
            "",
            "| expressions | n | hit rate @0.5 | mean IoU |",
            "|---|---|---|---|",
            f"| generated (vs their proposal) | {g['n']} | {_f(g['hit_rate@0.5'])} | {_f(g['mean_iou'])} |",
            f"| ground truth (vs their mask): reference | {r['n']} | {_f(r['hit_rate@0.5'])} | {_f(r['mean_iou'])} |",
        ]
    else:
        s = e["similarity"]
        lines += [
            "No grounding model: each generated expression of a matched proposal (IoU >= 0.5) is "
            "compared with the ground-truth expressions of its target (all-MiniLM-L6-v2, cosine of "
            "mean-pooled sentence embeddings; best over the target's texts).",
            "",
            f"Mean similarity {_f(s['mean'])} (median {_f(s['median'])}) over {s['n']} expressions.",
        ]
    return lines + [""]


def _images_md(im: dict[str, Any]) -> list[str]:
    lines = [
        "## Images",
        "",
        f"{im['evaluated']} evaluated: {im['with_proposals']} with proposals, {im['no_proposals']} where the "
        f"engine found none, {im['quarantined']} quarantined (the engine failed or crashed on them; they "
        "count as images with no proposals).",
    ]
    for q in im["quarantine"][:20]:
        lines.append(f"- `{q['key']}`: {q['kind']}: {q['reason']}")
    return lines + ["", "![best and worst proposals](proposals.png)", ""]


def write_report(out_dir: Path, metrics: dict[str, Any]) -> None:
    """Writes metrics.json and report.md into a local (staged) directory."""
    clean = _clean(metrics)
    (out_dir / METRICS_JSON).write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n")
    run = clean["run"]
    lines = [
        f"# Engine quality: {run['engine_name']} on {run['dataset']}/{run['split']}",
        "",
        f"Engine version {run['engine_version']}; "
        + (f"first {run['limit']} images; " if run["limit"] else "")
        + ("proposals ranked by " + (run["rank_by"] or "the engine's own order") + "."),
        "",
    ]
    lines += _masks_md(clean["masks"]) + _scores_md(clean["scores"])
    lines += _expressions_md(clean["expressions"]) + _images_md(clean["images"])
    lines += [
        "## Files",
        "",
        "`proposals.json` (COCO results: image_id, segmentation, score, expression) and "
        "`ground_truth.json` (COCO instances, one category) re-score with plain pycocotools "
        "(COCOeval segm, params.useCats = 0) to the AR above.",
        "",
    ]
    (out_dir / REPORT_MD).write_text("\n".join(lines))
