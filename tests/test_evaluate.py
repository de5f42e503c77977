"""unilseg.eval.evaluate: saved PNG masks scored by hand-computable metrics; missing and mis-sized files."""

import json
import math

import numpy as np
import pytest
from eval_fixtures import H, W, box, save_png, write_split
from PIL import Image

from shards.keys import expression_id, make_key, target_id
from unilseg.eval.evaluate import EvalError, evaluate
from unilseg.eval.families import family_of, semantic_class

pytest.importorskip("py_sod_metrics")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    gts = write_split(root / "ds" / "val")
    return root, gts


def _ids(gts):
    """The target ids of the fixture, in SPEC order: res0, gres0 (no target), res1, sod1, gres2, sod2."""
    return list(gts)


def _write_preds(d, gts, **override):
    for tid, m in gts.items():
        save_png(d / f"{tid}.png", override.get(tid, m))


def test_ground_truth_pngs_score_one(split, tmp_path):
    root, gts = split
    _write_preds(tmp_path / "pred", gts)
    m = evaluate(
        str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False, overlay_k=2
    )
    assert set(m) == {"res", "gres", "sod"}
    assert all(m["res"][k] == 1.0 for k in ("oIoU", "mIoU", "prec@0.5", "prec@0.9")) and m["res"]["n"] == 2
    assert (m["gres"]["gIoU"], m["gres"]["cIoU"], m["gres"]["N-acc"], m["gres"]["T-acc"]) == (1.0, 1.0, 1.0, 1.0)
    assert m["sod"]["MAE"] == 0.0 and m["sod"]["maxF"] == pytest.approx(1.0)
    assert m["sod"]["S-measure"] == pytest.approx(1.0)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["metrics"]["res"] == m["res"] and doc["missing"]["count"] == 0 and doc["first_text"] is None
    assert doc["families"] == {"gres": "gres", "res": "referring", "sod": "sod"}


def test_wrong_pngs_give_the_hand_computed_values(split, tmp_path):
    root, gts = split
    res0, gres0, res1, _, gres2, _ = _ids(gts)
    half = box(2, 12, 2, 7)  # inside res0's 10x10 box: I = 50, U = 100
    speck = box(0, 2, 0, 3)  # 6 pixels on the no-target expression
    _write_preds(tmp_path / "pred", gts, **{res0: half, gres0: speck})
    m = evaluate(
        str(root / "ds" / "val"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False, overlay_k=2
    )
    assert m["res"]["oIoU"] == pytest.approx((50 + 224) / (100 + 224))
    assert m["res"]["mIoU"] == pytest.approx(0.75)
    assert m["res"]["prec@0.5"] == 1.0 and m["res"]["prec@0.6"] == 0.5  # IoU >= 0.5 counts
    assert m["gres"]["gIoU"] == pytest.approx(0.5)
    assert m["gres"]["cIoU"] == pytest.approx(212 / (212 + 6))
    assert (m["gres"]["N-acc"], m["gres"]["T-acc"]) == (0.0, 1.0)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["run"]["overlays"]["worst"] == [gres0, res0]  # IoU 0, then 0.5


def test_probability_pngs_are_thresholded_at_half(split, tmp_path):
    root, gts = split
    res0 = _ids(gts)[0]
    _write_preds(tmp_path / "pred", gts)
    probs = np.where(box(2, 12, 2, 12), 128, 0).astype(np.uint8)  # 128/255 > 0.5: foreground
    probs[2:12, 2:7] = 127  # 127/255 < 0.5: background -> IoU 0.5
    Image.fromarray(probs).save(tmp_path / "pred" / f"{res0}.png")
    m = evaluate(str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False)
    assert m["res"]["mIoU"] == pytest.approx(0.75)
    m = evaluate(
        str(root / "ds"), str(tmp_path / "out2"), predictions=str(tmp_path / "pred"), progress=False, threshold=0.49
    )
    assert m["res"]["mIoU"] == 1.0


def test_missing_pngs_count_as_wrong_in_every_metric_unless_skipped(split, tmp_path):
    root, gts = split
    ids = _ids(gts)  # res0, gres0 (no target), res1, sod1, gres2, sod2
    _write_preds(tmp_path / "pred", gts)
    for i in (1, 2, 3):  # the no-target expression, half of the res masks (res1) and one SOD map
        (tmp_path / "pred" / f"{ids[i]}.png").unlink()
    m = evaluate(str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False)
    # a missing target scores IoU 0 and adds |G| = 224 to the union
    assert m["res"]["n"] == 2 and m["res"]["mIoU"] == 0.5 and m["res"]["oIoU"] == pytest.approx(100 / (100 + 224))
    # a missing no-target expression is a false positive over the whole image, never a correct rejection
    assert (m["gres"]["N-acc"], m["gres"]["T-acc"], m["gres"]["gIoU"]) == (0.0, 1.0, 0.5)
    assert m["gres"]["cIoU"] == pytest.approx(212 / (212 + H * W))
    # a missing SOD map is the inverse of its ground truth: MAE 1 there (an empty map would score 192/768)
    assert m["sod"]["n"] == 2 and m["sod"]["MAE"] == pytest.approx(0.5)
    assert m["sod"]["S-measure"] < 0.6 and m["sod"]["maxF"] < 0.6
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {k: doc["missing"][k] for k in ("count", "no_target", "ids", "counted_as")} == {
        "count": 3,
        "no_target": 1,
        "ids": ids[1:4],
        "counted_as": "wrong",
    }
    assert doc["counts"]["gres"] == {"scored": 2, "missing": 1}
    assert ids[1] not in doc["run"]["overlays"]["best"] + doc["run"]["overlays"]["worst"]  # no stand-in drawn
    report = (tmp_path / "out" / "report.md").read_text()
    assert (
        "3 prediction(s) missing** (gres 1, res 1, sod 1; 1 of them no-target): scored as wrong in every metric"
        in report
        and "whole-image false positive" in report
        and ids[3] in report
    )
    # skipped on request: the found ones alone are scored
    m = evaluate(
        str(root / "ds"), str(tmp_path / "skip"), predictions=str(tmp_path / "pred"), progress=False, skip_missing=True
    )
    assert m["res"]["n"] == 1 and m["res"]["mIoU"] == 1.0 and m["sod"]["n"] == 1 and m["gres"]["n"] == 1
    assert math.isnan(m["gres"]["N-acc"])
    doc = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    assert doc["missing"]["counted_as"] == "skipped" and doc["counts"]["sod"] == {"scored": 1, "missing": 1}
    assert "left out of the metrics below (--skip-missing)" in (tmp_path / "skip" / "report.md").read_text()


def test_mis_sized_png_is_an_error_naming_the_target(split, tmp_path):
    root, gts = split
    res1 = _ids(gts)[2]
    _write_preds(tmp_path / "pred", gts)
    save_png(tmp_path / "pred" / f"{res1}.png", None, shape=(H + 1, W))
    with pytest.raises(EvalError, match=rf"1 prediction\(s\).*{res1}: prediction is {W}x{H + 1}"):
        evaluate(str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False)


def test_no_prediction_at_all_names_the_expected_file(split, tmp_path):
    root, gts = split
    (tmp_path / "pred").mkdir()
    with pytest.raises(EvalError, match=rf"6 prediction\(s\) missing.*{_ids(gts)[0]}\.png"):
        evaluate(str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False)


def test_every_text_mode_uses_expression_ids(split, tmp_path):
    root, gts = split
    key = make_key("evaltest", "img0.png")
    for tid, m in gts.items():
        save_png(tmp_path / "pred" / f"{tid}_0.png", m)
    save_png(tmp_path / "pred" / f"{expression_id(key, 0, 1)}.png", box(2, 12, 2, 7))  # 2nd text: IoU 0.5
    m = evaluate(
        str(root / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False, texts="all"
    )
    assert m["res"]["n"] == 3 and m["res"]["mIoU"] == pytest.approx(2.5 / 3)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    first = doc["first_text"]  # the same predictions, each target's first text only: the 2nd text left out
    assert first["res"]["n"] == 2 and first["res"]["mIoU"] == 1.0 and first["gres"] == doc["metrics"]["gres"]
    assert "## The first text of each target" in (tmp_path / "out" / "report.md").read_text()
    m = evaluate(
        str(root / "ds"),
        str(tmp_path / "out"),
        predictions=str(tmp_path / "pred"),
        progress=False,
        limit=2,
        texts="all",
    )
    assert set(m) == {"res"} and m["res"]["n"] == 2 and m["res"]["mIoU"] == pytest.approx(0.75)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["run"]["truncated"] is True


def test_part_semantic_and_other_tasks_go_to_their_families(tmp_path):
    spec = [
        [
            ("part", "part", ["the wheel of the car"], box(0, 10, 0, 10)),
            ("part", "instance", ["the car"], box(0, 20, 0, 20)),
            ("semantic", "class", ["all cat"], box(0, 10, 0, 10)),
            ("semantic", "class", ["all dog"], box(10, 20, 0, 10)),
            ("auto", "instance", ["the small region"], box(0, 4, 0, 4)),
        ],
        [("semantic", "class", ["all cat"], box(0, 10, 0, 10))],
    ]
    gts = write_split(tmp_path / "ds" / "val", "mixed", spec)
    ids = list(gts)
    _write_preds(tmp_path / "pred", gts, **{ids[0]: box(0, 10, 0, 5), ids[5]: box(0, 10, 0, 5)})
    m = evaluate(str(tmp_path / "ds"), str(tmp_path / "out"), predictions=str(tmp_path / "pred"), progress=False)
    assert m["part"] == {"mIoU_part": 0.5, "mIoU_object_part": 0.75, "n": 2.0, "n_part": 1.0}
    assert m["semantic"]["mIoU"] == pytest.approx((150 / 200 + 1.0) / 2) and m["semantic"]["n_classes"] == 2
    assert m["auto"]["oIoU"] == 1.0 and family_of("auto").name == "referring"
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["details"]["semantic"]["per_class_iou"] == {"cat": 0.75, "dog": 1.0}
    assert semantic_class("all traffic light") == "traffic light" and semantic_class("sky") == "sky"


def test_bad_arguments_fail_before_any_work(split, tmp_path):
    root, _ = split
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(str(root / "ds"), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate(str(root / "ds"), str(tmp_path / "o"), predictions=str(tmp_path), benchmark="refcoco-vall")
    with pytest.raises(ValueError, match="texts must be one of"):
        evaluate(str(root / "ds"), str(tmp_path / "o"), predictions=str(tmp_path), texts="some")
    with pytest.raises(FileNotFoundError, match="not a shard split"):
        evaluate(str(root), str(tmp_path / "o"), predictions=str(tmp_path), split="test")
    assert target_id("k", 0) == "k_0"
