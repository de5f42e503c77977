"""unilseg.eval.report: benchmark resolution, comparison only on the benchmark's whole set, tables."""

import json

import pytest
from eval_fixtures import box, save_png, write_split

from unilseg.eval.evaluate import evaluate
from unilseg.eval.metrics_conventions import METRIC_CONVENTIONS
from unilseg.eval.report import LAYOUTS, parse_benchmark, render_table, resolve_benchmark

REFCOCO_SPEC = [
    [
        ("res", "instance", ["the left box", "the box on the left"], box(2, 12, 2, 12)),
        ("res", "instance", ["the right box"], box(4, 20, 16, 30)),
    ]
]


def test_parse_benchmark_accepts_slugs_and_names():
    assert parse_benchmark("refcoco-val") == "RefCOCO val"
    assert parse_benchmark("RefCOCO+ testA") == parse_benchmark("refcoco+-testa") == "RefCOCO+ testA"
    assert parse_benchmark("refcocom_testB") == "RefCOCOm testB"
    assert parse_benchmark("NONE") == "none" and parse_benchmark(None) is None
    with pytest.raises(ValueError, match="refcocog-test"):
        parse_benchmark("refcocog-dev")


def test_resolve_benchmark_from_provenance():
    assert resolve_benchmark(None, ["refcoco(unc)"], "testB")[0] == "RefCOCO testB"
    assert resolve_benchmark(None, ["refcocog(umd)"], "val")[0] == "RefCOCOg val"
    name, how = resolve_benchmark(None, ["refcoco(unc)"], "train")  # no published train numbers
    assert name is None and "--benchmark" in how
    assert resolve_benchmark(None, ["refcoco(unc)", "shapes(unc)"], "val")[0] is None  # mixed sources
    assert resolve_benchmark(None, ["shapes(unc)"], "val")[0] is None
    name, how = resolve_benchmark("refcoco+-val", ["shapes(unc)"], "val")
    assert name == "RefCOCO+ val" and "--benchmark" in how
    assert resolve_benchmark("none", ["refcoco(unc)"], "val") == (None, "comparison turned off (--benchmark none)")


@pytest.fixture(scope="module")
def refcoco_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("refcoco")
    gts = write_split(root / "refcoco" / "val", "refcoco(unc)", REFCOCO_SPEC)
    ids = list(gts)
    pred = root / "pred"
    save_png(pred / f"{ids[0]}.png", gts[ids[0]])
    save_png(pred / f"{ids[0]}_0.png", gts[ids[0]])
    save_png(pred / f"{ids[0]}_1.png", box(2, 12, 2, 7))  # IoU 0.5
    save_png(pred / f"{ids[1]}.png", gts[ids[1]])
    save_png(pred / f"{ids[1]}_0.png", gts[ids[1]])
    return root


def _eval(root, out, **kw):
    evaluate(str(root / "refcoco"), str(out), predictions=str(root / "pred"), progress=False, **kw)
    return json.loads((out / "metrics.json").read_text()), (out / "report.md").read_text()


def test_published_rows_beside_ours_when_every_expression_is_scored(refcoco_like, tmp_path):
    doc, report = _eval(refcoco_like, tmp_path, texts="all")
    assert doc["benchmark"] == {
        "name": "RefCOCO val",
        "how": "inferred from the targets' source 'refcoco(unc)' and the split name 'val'",
        "compared": True,
        "not_compared": [],
    }
    assert "### RefCOCO val" in report and "| UniLSeg-20 | Swin-B | 80.52 |" in report
    assert "| LISA |" in report and "| PolyFormer |" in report and "| ReLA (GRES) |" in report
    # ours: oIoU = (100 + 50 + 224) / (100 + 100 + 224), mIoU = 2.5 / 3, in percent
    assert f"| **ours** | | {100 * 374 / 424:.2f} | {100 * 2.5 / 3:.2f} |" in report


def test_no_comparison_on_a_different_set(refcoco_like, tmp_path):
    doc, report = _eval(refcoco_like, tmp_path / "first")  # first texts only, one target has two
    assert doc["benchmark"]["name"] == "RefCOCO val" and not doc["benchmark"]["compared"]
    assert "use --texts all" in report and "| UniLSeg-20 |" not in report
    doc, report = _eval(refcoco_like, tmp_path / "limit", texts="all", limit=2)
    assert "only the first 2 expressions" in doc["benchmark"]["not_compared"][0] and "| UniLSeg-20 |" not in report
    doc, report = _eval(refcoco_like, tmp_path / "none", texts="all", benchmark="none")
    assert doc["benchmark"]["name"] is None and "Benchmark: none (comparison turned off" in report
    doc, report = _eval(refcoco_like, tmp_path / "part", texts="all", benchmark="refcocom-val")
    assert "no 'part' targets were scored" in report and "| SEEM |" not in report


def test_tables_carry_every_convention_and_format_nan():
    text = render_table(
        LAYOUTS["gres"],
        [
            (
                "x/val (gres)",
                {"cIoU": 0.5, "gIoU": 0.25, "N-acc": float("nan"), "T-acc": 1.0, "n_no_target": 0.0, "n": 4.0},
            )
        ],
        0.35,
    )
    assert "| x/val (gres) | 50.00 | 25.00 | n/a | 100.00 | 0 | 4 |" in text
    for key in ("cIoU", "gIoU", "N-acc", "T-acc"):
        assert METRIC_CONVENTIONS[key] in text
    assert "Threshold used here: 0.35" in text
    sod = render_table(LAYOUTS["sod"], [("s (sod)", {"MAE": 0.0123, "maxF": 0.9, "S-measure": 0.8, "n": 2.0})], 0.5)
    assert "| s (sod) | 0.800 | 0.900 | 0.012 | 2 |" in sod and "Threshold" not in sod
