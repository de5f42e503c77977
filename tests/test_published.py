"""Published numbers: the data matches the reference file, and the table renders them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unilseg.eval.published import (
    BENCHMARK_FAMILY,
    METHOD_NOTES,
    PUBLISHED,
    PUBLISHED_CONVENTIONS,
    PUBLISHED_DECIMALS,
    REFCOCOM_BENCHMARKS,
    RES_BENCHMARKS,
    benchmark_metrics,
    render_comparison,
)

REFERENCE = Path(__file__).parent / "data" / "published_results.md"


def test_spot_values():
    assert PUBLISHED["RefCOCO val"]["UniLSeg-20"] == {"oIoU": 80.52}
    assert PUBLISHED["RefCOCOg test"]["UniLSeg-100"]["oIoU"] == 80.54
    assert PUBLISHED["RefCOCO+ testB"]["LAVT"] == {"oIoU": 55.10, "mIoU": 59.2}
    assert PUBLISHED["RefCOCO testA"]["UniRES"] == {"oIoU": 80.9, "mIoU": 81.6}
    assert PUBLISHED["RefCOCOg val"]["CRIS"] == {"oIoU": 59.87, "mIoU": 59.9}
    assert PUBLISHED["RefCOCOm testA"]["UniRES"] == {"mIoU_part": 16.4, "mIoU_object_part": 27.8}
    assert PUBLISHED["RefCOCOm val"]["SEEM"] == {"mIoU_part": 16.1, "mIoU_object_part": 29.4}


def test_every_benchmark_has_convention_family_and_notes():
    assert set(PUBLISHED) == set(RES_BENCHMARKS) | set(REFCOCOM_BENCHMARKS)
    assert len(RES_BENCHMARKS) == 8 and len(REFCOCOM_BENCHMARKS) == 3
    for b, rows in PUBLISHED.items():
        assert PUBLISHED_CONVENTIONS[b]
        notes = METHOD_NOTES[BENCHMARK_FAMILY[b]]
        for method, values in rows.items():
            assert method in notes, (b, method)
            assert set(values) <= set(PUBLISHED_DECIMALS[method])
            assert all(0 < v < 100 for v in values.values())
    assert len(PUBLISHED["RefCOCO val"]) == 9 and len(PUBLISHED["RefCOCOm val"]) == 5
    assert benchmark_metrics("RefCOCO val") == ["oIoU", "mIoU"]
    assert benchmark_metrics("RefCOCOm testB") == ["mIoU_part", "mIoU_object_part"]


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_tables_match_reference_file():
    text = REFERENCE.read_text()
    names = {"LISA (oIoU, from the MRES paper)": "LISA"}
    res_rows = _table_rows(text, "| method | backbone | RefCOCO |")
    assert len(res_rows) == 8
    for method, _backbone, *cells in res_rows:
        method = names.get(method, method)
        values = [v for cell in cells for v in cell.split(" / ")]
        assert len(values) == 8
        for b, v in zip(RES_BENCHMARKS, values):
            assert PUBLISHED[b][method]["oIoU"] == float(v), (method, b)
            assert PUBLISHED_DECIMALS[method]["oIoU"] == len(v.split(".")[1])
    m_rows = _table_rows(text, "| method | val | testA | testB |")
    assert len(m_rows) == 5
    for method, *cells in m_rows:
        for b, cell in zip(REFCOCOM_BENCHMARKS, cells):
            part, obj_part = (float(v) for v in cell.split(" / "))
            assert PUBLISHED[b][method] == {"mIoU_part": part, "mIoU_object_part": obj_part}
    # the prose lines: UniRES oIoU and mIoU, LAVT and CRIS mIoU
    for label, method, metric in [
        ("classic RES: oIoU", "UniRES", "oIoU"),
        ("\nmIoU", "UniRES", "mIoU"),
        ("LAVT mIoU", "LAVT", "mIoU"),
        ("CRIS mIoU", "CRIS", "mIoU"),
    ]:
        tail = text[text.index(label) + len(label) :]
        values = re.findall(r"\d+\.\d+", tail)[:8]
        assert [PUBLISHED[b][method][metric] for b in RES_BENCHMARKS] == [float(v) for v in values], label


def test_render_places_ours_beside_published():
    md = render_comparison("RefCOCO val", {"oIoU": 0.81234, "mIoU": 0.79, "prec@0.5": 0.9, "n": 10.0})
    lines = md.splitlines()
    assert lines[0] == "### RefCOCO val"
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| method | backbone | oIoU | mIoU |"
    assert len(table) == 2 + 9 + 1  # header, rule, nine published rows, ours
    assert len({line.count("|") for line in table}) == 1  # well-formed rows
    assert table[-1] == "| **ours** | | 81.23 | 79.00 |"
    assert "| CRIS | R101 | 70.47 | 70.5 |" in table
    assert "| ReLA (GRES) | Swin-B | 73.82 | — |" in table  # not published -> dash
    assert "prec@0.5" not in table[0]
    assert any(line.startswith("- Published: Values in percent") for line in lines)
    ours_line = next(line for line in lines if line.startswith("- Ours (ours):"))
    assert "oIoU: Overall IoU" in ours_line and "mIoU: Mean over samples" in ours_line
    assert "CRIS's code thresholds the sigmoid at 0.35" in md


def test_render_keeps_printed_decimals_and_marks_undefined():
    md = render_comparison("RefCOCOg val", None)
    assert "| ReLA (GRES) | Swin-B | 65.00 | — |" in md  # printed as 65.00, not 65
    assert "**ours**" not in md and "- Ours" not in md
    md = render_comparison(
        "RefCOCOm testB", {"mIoU_part": float("nan"), "mIoU_object_part": 0.3}, ours_name="tiny", title=False
    )
    assert not md.startswith("###")
    assert "| **tiny** | | n/a | 30.00 |" in md
    assert "| UniRES | — | 25.2 | 41.7 |" in md
    assert "MRES paper" in md and "UniLSeg's table" not in md


def test_render_column_choice_and_scale():
    md = render_comparison("RefCOCO+ testA", {"oIoU": 72.0}, metrics=["oIoU"], ours_scale=1.0)
    assert "| method | backbone | oIoU |" in md and "| **ours** | | 72.00 |" in md
    assert "mIoU" not in md.split("- Published")[0]


def test_render_unknown_benchmark():
    with pytest.raises(ValueError, match="known: RefCOCO val"):
        render_comparison("RefCOCO dev", {"oIoU": 0.5})
