"""metrics.json and report.md of an evaluation: paper-layout tables, conventions, published rows.

Which benchmark a split is: `--benchmark NAME` says it ("refcoco-val", "RefCOCO+ testA",
"refcocom-val", or "none"); otherwise it is inferred from the targets' own provenance:
one target source that a converter records for a published set (the refcoco converter
writes "refcoco(unc)", "refcoco+(unc)", "refcocog(umd)") and a split named like the
benchmark's (val/testA/testB/test). The report says which way it was decided. Published
numbers are printed beside ours only when the scored set is that benchmark's whole set:
no --limit truncation, no prediction left out (--skip-missing), every text scored when targets carry
several (the papers count every expression); otherwise the report says why not.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unilseg.eval.families import MISSING_RULE, family_of
from unilseg.eval.metrics_conventions import METRIC_CONVENTIONS
from unilseg.eval.metrics_referring import PREC_THRESHOLDS
from unilseg.eval.published import BENCHMARK_FAMILY, PUBLISHED, render_comparison

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
OVERLAYS = "overlays.png"
MAX_LISTED = 20

# target source recorded by the converters -> published dataset name
BENCHMARK_SOURCES = {
    "refcoco(unc)": "RefCOCO",
    "refcoco+(unc)": "RefCOCO+",
    "refcocog(umd)": "RefCOCOg",
    "refcocom": "RefCOCOm",
}
SPLIT_NAMES = {"val": "val", "testa": "testA", "testb": "testB", "test": "test"}
# benchmark family -> the task whose group is compared with it
COMPARED_TASK = {"RES": "res", "RefCOCOm": "part"}


@dataclass(frozen=True)
class Column:
    key: str  # metric name in our dicts
    header: str  # as the papers print it
    fmt: str  # "pct" (x100, 2 decimals), "frac" (3 decimals) or "int"
    convention: str | None = None  # METRIC_CONVENTIONS key


@dataclass(frozen=True)
class Layout:
    title: str
    source: str  # whose table layout this follows
    columns: tuple[Column, ...]
    binarised: bool = True  # metrics on thresholded masks (False: on the maps, SOD)


LAYOUTS: dict[str, Layout] = {
    "referring": Layout(
        "Referring segmentation",
        "LAVT's RefCOCO tables (Prec@X, oIoU, mIoU)",
        tuple(Column(f"prec@{t}", f"P@{t}", "pct", f"prec@{t}") for t in PREC_THRESHOLDS)
        + (Column("oIoU", "oIoU", "pct", "oIoU"), Column("mIoU", "mIoU", "pct", "mIoU")),
    ),
    "gres": Layout(
        "Generalised referring segmentation",
        "ReLA's gRefCOCO tables",
        (
            Column("cIoU", "cIoU", "pct", "cIoU"),
            Column("gIoU", "gIoU", "pct", "gIoU"),
            Column("N-acc", "N-acc.", "pct", "N-acc"),
            Column("T-acc", "T-acc.", "pct", "T-acc"),
            Column("n_no_target", "no-target", "int"),
        ),
    ),
    "part": Layout(
        "Part-level referring segmentation",
        "MRES's RefCOCOm table",
        (
            Column("mIoU_part", "mIoU Part", "pct", "mIoU_part"),
            Column("mIoU_object_part", "mIoU Object+Part", "pct", "mIoU_object_part"),
            Column("n_part", "part exprs", "int"),
        ),
    ),
    "semantic": Layout(
        'Semantic segmentation ("all <class>")',
        "semantic-segmentation tables (mIoU)",
        (Column("mIoU", "mIoU", "pct", "mIoU (semantic)"), Column("n_classes", "classes", "int")),
    ),
    "sod": Layout(
        "Salient / camouflaged object detection",
        "SOD/COD tables (S-measure, max F, MAE)",
        (
            Column("S-measure", "S_alpha", "frac", "S-measure"),
            Column("maxF", "maxF_beta", "frac", "maxF"),
            Column("MAE", "MAE", "frac", "MAE"),
        ),
        binarised=False,
    ),
}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9+]+", "-", name.lower()).strip("-")


def parse_benchmark(arg: str | None) -> str | None:
    """An explicit --benchmark value -> a PUBLISHED key, "none", or None (infer).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if arg is None or arg.lower() == "none":
        return None if arg is None else "none"
    by_slug = {_slug(b): b for b in PUBLISHED}
    if _slug(arg) not in by_slug:
        raise ValueError(f"unknown benchmark {arg!r}; known: {', '.join(sorted(by_slug))} (or 'none')")
    return by_slug[_slug(arg)]


def resolve_benchmark(arg: str | None, sources: Sequence[str], split: str) -> tuple[str | None, str]:
    """(benchmark or None, how it was decided) for an explicit value or a split's provenance."""
    chosen = parse_benchmark(arg)
    if chosen == "none":
        return None, "comparison turned off (--benchmark none)"
    if chosen is not None:
        return chosen, f"named by --benchmark {arg}"
    srcs = sorted(set(sources))
    if len(srcs) == 1 and srcs[0].lower() in BENCHMARK_SOURCES and split.lower() in SPLIT_NAMES:
        name = f"{BENCHMARK_SOURCES[srcs[0].lower()]} {SPLIT_NAMES[split.lower()]}"
        if name in PUBLISHED:
            return name, f"inferred from the targets' source {srcs[0]!r} and the split name {split!r}"
    return None, (
        f"no published benchmark matches the targets' source(s) {', '.join(map(repr, srcs))} and "
        f"split {split!r}; name one with --benchmark (e.g. refcoco-val)"
    )


def comparison_blockers(
    benchmark: str, metrics: dict[str, Any], missing_by_task: dict[str, int], run: dict[str, Any]
) -> list[str]:
    """Reasons the scored set is not the benchmark's set (empty: compare)."""
    task = COMPARED_TASK[BENCHMARK_FAMILY[benchmark]]
    reasons = []
    if task not in metrics:
        reasons.append(f"no '{task}' targets were scored, and {benchmark} is a '{task}' benchmark")
    if run.get("truncated"):
        reasons.append(f"only the first {run['limit']} expressions were scored (--limit)")
    if missing_by_task.get(task) and run.get("missing_counted_as") == "skipped":
        reasons.append(f"{missing_by_task[task]} '{task}' prediction(s) are missing and were left out (--skip-missing)")
    if run.get("texts") == "first" and run.get("multi_text_targets"):
        reasons.append(
            f"{run['multi_text_targets']} targets carry several texts but only the first was "
            "scored, while the published numbers score every expression (use --texts all)"
        )
    return reasons


def _fmt(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return {"pct": f"{100 * v:.2f}", "frac": f"{v:.3f}", "int": f"{int(v)}"}[fmt]


def render_table(layout: Layout, rows: list[tuple[str, dict[str, Any]]], threshold: float) -> str:
    """A markdown table in the layout's column order, then the convention of every column."""
    head = "| split (task) | " + " | ".join(c.header for c in layout.columns) + " | n |"
    lines = [head, "|---|" + "---|" * (len(layout.columns) + 1)]
    for label, m in rows:
        lines.append(
            f"| {label} | "
            + " | ".join(_fmt(m.get(c.key), c.fmt) for c in layout.columns)
            + f" | {_fmt(m.get('n'), 'int')} |"
        )
    pct = any(c.fmt == "pct" for c in layout.columns)
    lines += [
        "",
        f"Layout: {layout.source}. "
        + ("IoU-like values in percent. " if pct else "Values as fractions (lower MAE is better). ")
        + "n = scored expressions.",
        "",
    ]
    if layout.binarised:
        lines.append(f"- binarisation: {METRIC_CONVENTIONS['binarisation']} Threshold used here: {threshold:g}.")
    else:
        lines.append(
            "- maps: the probability map itself is scored (no threshold); a model's map is kept as "
            "8 bits (value / 255), the form saved SOD maps have."
        )
    for c in layout.columns:
        if c.convention:
            lines.append(f"- {c.header}: {METRIC_CONVENTIONS[c.convention]}")
    return "\n".join(lines) + "\n"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_report(
    out_dir: str | os.PathLike,
    metrics: dict[str, dict[str, float]],
    details: dict[str, Any],
    items: Sequence[Any],
    missing: Sequence[tuple[str, str]],
    run: dict[str, Any],
    first_text: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Writes metrics.json and report.md; returns the metrics.json document.

    Args:
        out_dir: report dir.
        metrics: task -> metric dict (as the metric functions return them).
        details: task -> extra results (per-class IoU of semantic groups).
        items: the scored items (for counts per task).
        missing: (id, task, no target) of every expression without a prediction.
        run: what was run (split, predictor, threshold, texts, limit, truncated, sources,
            benchmark_arg, overlays).
        first_text: with every text scored, task -> metrics over each target's first text.
    """
    out_dir = Path(out_dir)
    scored: dict[str, int] = {}
    for it in items:
        scored[it.task] = scored.get(it.task, 0) + 1
    missing_by_task: dict[str, int] = {}
    for _, task, _ in missing:
        missing_by_task[task] = missing_by_task.get(task, 0) + 1
    bench, how = resolve_benchmark(run.get("benchmark_arg"), run.get("sources", []), run["split"])
    blockers = comparison_blockers(bench, metrics, missing_by_task, run) if bench else []
    doc = {
        "metrics": metrics,
        "details": details,
        "families": {t: family_of(t).name for t in metrics},
        "counts": {
            t: {"scored": scored.get(t, 0), "missing": missing_by_task.get(t, 0)}
            for t in sorted(set(scored) | set(missing_by_task))
        },
        "missing": {
            "count": len(missing),
            "no_target": sum(1 for *_, nt in missing if nt),
            "ids": [i for i, *_ in missing[:MAX_LISTED]],
            "counted_as": run.get("missing_counted_as", "wrong"),
            "rule": run.get("missing_rule"),
        },
        "benchmark": {"name": bench, "how": how, "compared": bool(bench) and not blockers, "not_compared": blockers},
        "run": run,
        "first_text": first_text,
    }
    with open(out_dir / METRICS_JSON, "w", encoding="utf-8") as f:
        json.dump(_json_safe(doc), f, indent=1, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    (out_dir / REPORT_MD).write_text(render_report(doc), encoding="utf-8")
    return doc


def _predictor_line(p: dict[str, Any]) -> str:
    if p.get("kind") == "checkpoint":
        preset = f", preset `{p['preset']}`" if p.get("preset") else ""
        return f"model checkpoint `{p['checkpoint']}`{preset} on {p.get('device', 'cpu')}"
    return f"saved masks from `{p['predictions']}` (`<id>.png`)"


def render_report(doc: dict[str, Any]) -> str:
    """The markdown report of a metrics.json document."""
    run = doc["run"]
    label = f"{run['dataset']}/{run['split']}"
    by_family: dict[str, list[str]] = {}
    for task, fam in doc["families"].items():
        by_family.setdefault(fam, []).append(task)
    families = sorted(by_family, key=list(LAYOUTS).index)
    lines = _header_lines(doc, label) + _missing_lines(doc)
    for fam in families:
        lines += _family_lines(doc, label, fam, by_family[fam])
    if doc.get("first_text"):
        lines += _first_text_lines(doc, label, [(fam, by_family[fam]) for fam in families])
    lines += _published_lines(doc) + _overlay_lines(run.get("overlays"))
    return "\n".join(lines).rstrip() + "\n"


def _header_lines(doc: dict[str, Any], label: str) -> list[str]:
    """Title, data, predictor, what was scored, threshold."""
    run = doc["run"]
    texts = (
        "every text of every target (id `<target id>_<text index>`)"
        if run["texts"] == "all"
        else "one expression per target, its first text (id `<target id>`)"
    )
    n_scored = sum(c["scored"] for c in doc["counts"].values())
    return [
        f"# Evaluation: {label}",
        "",
        f"- Data: `{run['split_dir']}`; target sources: {', '.join(run['sources']) or '—'}",
        f"- Predictions: {_predictor_line(run['predictor'])}",
        f"- Scored: {n_scored} expressions, {texts}"
        + (f"; stopped after --limit {run['limit']}" if run.get("truncated") else ""),
        f"- Threshold: {run['threshold']:g} (prediction > threshold is foreground)",
        "",
    ]


def _missing_lines(doc: dict[str, Any]) -> list[str]:
    """How many predictions were missing and how they counted (nothing when none was)."""
    if not doc["missing"]["count"]:
        return []
    by_task = ", ".join(f"{t} {c['missing']}" for t, c in doc["counts"].items() if c["missing"])
    how = (
        "left out of the metrics below (--skip-missing)"
        if doc["missing"]["counted_as"] == "skipped"
        else f"{doc['missing']['rule'] or MISSING_RULE}, in the metrics below"
    )
    return [
        f"**{doc['missing']['count']} prediction(s) missing** ({by_task}; "
        f"{doc['missing']['no_target']} of them no-target): {how}. "
        f"First ids: {', '.join(doc['missing']['ids'])}",
        "",
    ]


def _family_lines(doc: dict[str, Any], label: str, fam: str, tasks: list[str]) -> list[str]:
    """A family's section: its paper-layout table, then per-class IoUs where there are any."""
    layout = LAYOUTS[fam]
    lines = [
        f"## {layout.title}",
        "",
        render_table(layout, [(f"{label} ({t})", doc["metrics"][t]) for t in tasks], doc["run"]["threshold"]),
    ]
    for t in tasks:
        per_class = doc["details"].get(t, {}).get("per_class_iou")
        if per_class:
            lines += [f"Per-class IoU ({t}):", "", "| class | IoU |", "|---|---|"]
            lines += [f"| {c} | {_fmt(v, 'pct')} |" for c, v in sorted(per_class.items())] + [""]
    return lines


def _first_text_lines(doc: dict[str, Any], label: str, families: list[tuple[str, list[str]]]) -> list[str]:
    """The same predictions scored on each target's first text only (``--texts all`` runs)."""
    lines = [
        "## The first text of each target",
        "",
        "The same predictions, one expression per target (its first text): the protocol of `--texts first`.",
        "",
    ]
    for fam, family_tasks in families:
        tasks = [t for t in family_tasks if t in doc["first_text"]]
        if tasks:
            lines.append(
                render_table(
                    LAYOUTS[fam],
                    [(f"{label} ({t}), first text", doc["first_text"][t]) for t in tasks],
                    doc["run"]["threshold"],
                )
            )
    return lines


def _published_lines(doc: dict[str, Any]) -> list[str]:
    """The benchmark chosen and, when the run is comparable, the published numbers beside ours."""
    b = doc["benchmark"]
    lines = ["## Published results", "", f"Benchmark: {b['name'] or 'none'} ({b['how']}).", ""]
    if b["name"] and b["compared"]:
        task = COMPARED_TASK[BENCHMARK_FAMILY[b["name"]]]
        lines.append(render_comparison(b["name"], doc["metrics"][task], ours_name="ours"))
    elif b["name"]:
        lines += ["Not compared with the published numbers: " + "; ".join(b["not_compared"]) + ".", ""]
    return lines


def _overlay_lines(ov: dict[str, Any] | None) -> list[str]:
    """The best/worst sheet with its legend (nothing when none was drawn)."""
    if not ov:
        return []
    return [
        "## Best and worst predictions",
        "",
        f"![best and worst predictions]({Path(ov['path']).name})",
        "",
        f"Top row: the {len(ov['best'])} best by IoU; bottom row: the {len(ov['worst'])} worst. "
        f"{ov['legend'].capitalize()}.",
        "",
    ]
