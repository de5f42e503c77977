"""Published numbers to print beside ours, as data, and a markdown table renderer.

Values are copied from published_results.md (the papers' official README figures; a copy
is in tests/data/, and tests check these values against it), in percent, as printed (no
re-rounding). `PUBLISHED[benchmark][method]` maps metric name -> value, metric names
matching the keys our metric functions return (`oIoU`, `mIoU`, `mIoU_part`,
`mIoU_object_part`). `PUBLISHED_CONVENTIONS[benchmark]` says which convention those numbers
follow; `METHOD_NOTES[family][method]` gives backbone and source (family from
`BENCHMARK_FAMILY`); `PUBLISHED_DECIMALS[method][metric]` gives the number of decimals
each value was printed with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Optional

from unilseg.eval.metrics_conventions import METRIC_CONVENTIONS

RES_BENCHMARKS = (
    "RefCOCO val",
    "RefCOCO testA",
    "RefCOCO testB",
    "RefCOCO+ val",
    "RefCOCO+ testA",
    "RefCOCO+ testB",
    "RefCOCOg val",
    "RefCOCOg test",
)  # RefCOCOg: the umd split
REFCOCOM_BENCHMARKS = ("RefCOCOm val", "RefCOCOm testA", "RefCOCOm testB")

# (method, metric, decimals as printed, one value per RES_BENCHMARKS entry)
_RES_ROWS: list[tuple[str, str, int, tuple[float, ...]]] = [
    ("CRIS", "oIoU", 2, (70.47, 73.18, 66.10, 62.27, 68.08, 53.68, 59.87, 60.36)),
    ("CRIS", "mIoU", 1, (70.5, 73.2, 66.1, 62.3, 68.1, 53.7, 59.9, 60.4)),
    ("LAVT", "oIoU", 2, (72.73, 75.82, 68.79, 62.14, 68.38, 55.10, 61.24, 62.09)),
    ("LAVT", "mIoU", 1, (74.5, 76.9, 70.9, 65.8, 71.0, 59.2, 63.3, 63.6)),
    ("ReLA (GRES)", "oIoU", 2, (73.82, 76.48, 70.18, 66.04, 71.02, 57.65, 65.00, 65.97)),
    ("PolyFormer", "oIoU", 2, (74.82, 76.64, 71.06, 67.64, 72.89, 59.33, 67.76, 69.05)),
    ("LISA", "oIoU", 1, (74.9, 79.1, 72.3, 65.1, 70.8, 58.1, 67.9, 70.6)),
    ("UniRES", "oIoU", 1, (77.4, 80.9, 74.7, 69.4, 76.1, 61.4, 68.9, 71.0)),
    ("UniRES", "mIoU", 1, (79.2, 81.6, 76.6, 73.0, 78.1, 65.8, 71.8, 72.9)),
    ("UNINEXT", "oIoU", 2, (80.32, 82.61, 77.76, 70.04, 74.91, 62.57, 73.41, 73.68)),
    ("UniLSeg-20", "oIoU", 2, (80.52, 81.83, 78.43, 72.70, 77.02, 66.99, 78.41, 79.47)),
    ("UniLSeg-100", "oIoU", 2, (81.74, 83.17, 79.85, 73.18, 78.29, 68.15, 79.27, 80.54)),
]

# method -> ((part, object+part) per REFCOCOM_BENCHMARKS entry)
_REFCOCOM_ROWS: list[tuple[str, tuple[tuple[float, float], ...]]] = [
    ("CRIS", ((10.6, 25.4), (10.1, 21.2), (12.9, 30.0))),
    ("LAVT", ((15.3, 29.9), (13.2, 24.4), (18.7, 35.5))),
    ("X-Decoder", ((16.2, 29.5), (13.6, 23.6), (20.3, 33.8))),
    ("SEEM", ((16.1, 29.4), (13.6, 23.4), (20.4, 33.9))),
    ("UniRES", ((19.6, 34.3), (16.4, 27.8), (25.2, 41.7))),
]

# family -> method -> backbone and where the numbers come from
METHOD_NOTES: dict[str, dict[str, dict[str, str]]] = {
    "RES": {
        "CRIS": {
            "backbone": "R101",
            "source": "oIoU from UniLSeg's table, mIoU from the MRES "
            "paper; CRIS's code thresholds the sigmoid at 0.35, warps back to the original "
            "size and counts Prec@X with IoU > X",
        },
        "LAVT": {
            "backbone": "Swin-B",
            "source": "oIoU from UniLSeg's table, mIoU from the MRES "
            "paper; LAVT's code counts Prec@X with IoU >= X on ground truth resized to 480",
        },
        "ReLA (GRES)": {"backbone": "Swin-B", "source": "UniLSeg's table"},
        "PolyFormer": {"backbone": "Swin-B", "source": "UniLSeg's table"},
        "LISA": {"backbone": "—", "source": "oIoU as printed in the MRES paper"},
        "UniRES": {"backbone": "—", "source": "MRES paper"},
        "UNINEXT": {"backbone": "ConvNeXt-L", "source": "UniLSeg's table"},
        "UniLSeg-20": {"backbone": "Swin-B", "source": "UniLSeg's table"},
        "UniLSeg-100": {"backbone": "Swin-B", "source": "UniLSeg's table"},
    },
    # the RefCOCOm table states no backbones
    "RefCOCOm": {m: {"backbone": "—", "source": "MRES paper"} for m, _ in _REFCOCOM_ROWS},
}
BENCHMARK_FAMILY: dict[str, str] = {
    **{b: "RES" for b in RES_BENCHMARKS},
    **{b: "RefCOCOm" for b in REFCOCOM_BENCHMARKS},
}

_RES_CONVENTION = (
    "Values in percent. oIoU = cumulative intersection / cumulative "
    "union over the split; mIoU = mean per-expression IoU. UniLSeg's results "
    "table does not label its metric (Papers with Code lists it as Overall "
    "IoU); it is recorded here as oIoU."
)
_REFCOCOM_CONVENTION = (
    "Values in percent (MRES paper). mIoU_part = mean IoU over "
    "part-level expressions; mIoU_object_part = mean IoU over object- and "
    "part-level expressions."
)


def _build() -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, str], dict[str, dict[str, int]]]:
    table: dict[str, dict[str, dict[str, float]]] = {b: {} for b in RES_BENCHMARKS + REFCOCOM_BENCHMARKS}
    conventions = {b: _RES_CONVENTION for b in RES_BENCHMARKS}
    conventions.update({b: _REFCOCOM_CONVENTION for b in REFCOCOM_BENCHMARKS})
    decimals: dict[str, dict[str, int]] = {}
    for method, metric, dec, values in _RES_ROWS:
        assert len(values) == len(RES_BENCHMARKS), method
        decimals.setdefault(method, {})[metric] = dec
        for b, v in zip(RES_BENCHMARKS, values):
            table[b].setdefault(method, {})[metric] = v
    for method, pairs in _REFCOCOM_ROWS:
        assert len(pairs) == len(REFCOCOM_BENCHMARKS), method
        decimals.setdefault(method, {}).update({"mIoU_part": 1, "mIoU_object_part": 1})
        for b, (part, obj_part) in zip(REFCOCOM_BENCHMARKS, pairs):
            table[b][method] = {"mIoU_part": part, "mIoU_object_part": obj_part}
    return table, conventions, decimals


PUBLISHED, PUBLISHED_CONVENTIONS, PUBLISHED_DECIMALS = _build()


def benchmark_metrics(benchmark: str) -> list[str]:
    """Metric names published for `benchmark`, in first-seen order."""
    rows = _rows(benchmark)
    names: list[str] = []
    for values in rows.values():
        names.extend(k for k in values if k not in names)
    return names


def _rows(benchmark: str) -> dict[str, dict[str, float]]:
    try:
        return PUBLISHED[benchmark]
    except KeyError:
        raise ValueError(f"no published numbers for benchmark {benchmark!r}; known: {', '.join(PUBLISHED)}") from None


def _fmt(v: Optional[float], digits: int) -> str:
    if v is None:
        return "—"
    if math.isnan(v):
        return "n/a"
    return f"{v:.{digits}f}"


def render_comparison(
    benchmark: str,
    ours: Optional[Mapping[str, float]] = None,
    *,
    ours_name: str = "ours",
    metrics: Optional[Sequence[str]] = None,
    ours_scale: float = 100.0,
    title: bool = True,
) -> str:
    """A markdown table of the published rows for one benchmark with ours beneath them.

    Args:
        benchmark: a key of `PUBLISHED`, e.g. "RefCOCO val" or "RefCOCOm testA".
        ours: our metric dict (as returned by `referring_metrics` or `part_metrics`), or
            None to print only the published rows. Keys not shown as columns are ignored.
        ours_name: the row label for our numbers (printed bold).
        metrics: columns to show; defaults to every metric published for the benchmark.
        ours_scale: factor applied to our values; 100 turns our fractions into percent.
        title: start with a `### benchmark` heading.

    Returns:
        str: markdown: heading, table (a missing value is "—", an undefined one "n/a"),
        then bullets: the published convention, ours for each column we report, sources.

    Raises:
        ValueError: unknown benchmark.
    """
    rows = _rows(benchmark)
    notes = METHOD_NOTES[BENCHMARK_FAMILY[benchmark]]
    cols = list(metrics) if metrics is not None else benchmark_metrics(benchmark)
    lines = [f"### {benchmark}", ""] if title else []
    lines.append("| method | backbone | " + " | ".join(cols) + " |")
    lines.append("|---|---|" + "---|" * len(cols))
    for method, values in rows.items():
        backbone = notes.get(method, {}).get("backbone", "—")
        # published values keep the number of decimals they were printed with
        dec = PUBLISHED_DECIMALS.get(method, {})
        cells = [_fmt(values.get(c), dec.get(c, 2)) for c in cols]
        lines.append(f"| {method} | {backbone} | " + " | ".join(cells) + " |")
    if ours is not None:
        cells = [_fmt(None if ours.get(c) is None else float(ours[c]) * ours_scale, 2) for c in cols]
        lines.append(f"| **{ours_name}** | | " + " | ".join(cells) + " |")
    lines += ["", f"- Published: {PUBLISHED_CONVENTIONS[benchmark]}"]
    if ours is not None:
        ours_conv = " ".join(f"{c}: {METRIC_CONVENTIONS[c]}" for c in cols if c in METRIC_CONVENTIONS and c in ours)
        lines.append(f"- Ours ({ours_name}): {ours_conv}")
    sources = "; ".join(f"{m}: {notes[m]['source']}" for m in rows if m in notes)
    lines.append(f"- Sources: {sources}.")
    return "\n".join(lines) + "\n"
