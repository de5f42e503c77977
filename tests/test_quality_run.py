"""evaluate_engine end to end: the annotate pipeline in a private Ray, proposals scored against a
split whose answers are known by hand (quality_fixtures)."""

import json

import pytest
from click.testing import CliRunner
from driver_fixtures import one_line_error
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from quality_fixtures import engine, write_split

from annotation_engine.quality.run import evaluate_engine
from cli import main
from common.errors import UniLSegError


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "rects"
    write_split(data / "val")
    return data


def test_ground_truth_engine_scores_one_and_nothing_is_written_into_data(ray_cluster, labeled, tmp_path):
    before = sorted(p.name for p in (labeled / "val").iterdir())
    m = evaluate_engine(engine(0), str(labeled), str(tmp_path / "r"), split="val", progress=False)
    assert m["masks"]["AR@100"] == pytest.approx(1.0) and m["masks"]["precision@0.5"] == pytest.approx(1.0)
    assert m["images"] == {"evaluated": 3, "with_proposals": 3, "no_proposals": 0, "quarantined": 0, "quarantine": []}
    assert sorted(p.name for p in (labeled / "val").iterdir()) == before
    out = tmp_path / "r"
    for f in ("report.md", "metrics.json", "recall.png", "scores.png", "proposals.png", "proposals.json"):
        assert (out / f).stat().st_size > 0, f
    assert not (out / "images").exists()  # the exported images are removed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["masks"]["AR@100"] == pytest.approx(1.0)
    assert set(saved["scores"]) >= {"predicted_iou", "stability_score", "area_fraction"}
    assert saved["expressions"]["method"] == "minilm" and saved["expressions"]["similarity"]["n"] == 4


def test_shifted_engine_scores_by_hand_and_pycocotools_agrees(ray_cluster, labeled, tmp_path):
    m = evaluate_engine(engine(5), str(labeled), str(tmp_path), split="val", progress=False)
    assert m["masks"]["AR@100"] == pytest.approx(0.6) and m["masks"]["recall@0.75"] == pytest.approx(1.0)
    gt = COCO(str(tmp_path / "ground_truth.json"))
    res = json.loads((tmp_path / "proposals.json").read_text())
    assert {r["image_id"] for r in res} <= set(gt.getImgIds()) and all(r["expression"] for r in res)
    ev = COCOeval(gt, gt.loadRes(res), "segm")
    ev.params.useCats = 0
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert [m["masks"][k] for k in ("AR@1", "AR@10", "AR@100")] == pytest.approx(list(ev.stats[6:9]))


def test_split_without_targets_is_one_line(ray_cluster, tmp_path):
    write_split(tmp_path / "empty" / "val", spec=[[]])
    with pytest.raises(UniLSegError, match="no targets with a mask"):
        evaluate_engine(engine(0), str(tmp_path / "empty"), str(tmp_path / "r"), split="val", progress=False)
    res = CliRunner().invoke(
        main, ["eval-engine", "weightfree", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]
    )
    assert "no targets with a mask" in one_line_error(res)


def test_grounding_file_that_is_no_checkpoint_is_one_line(tmp_path, labeled):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(
        main,
        ["eval-engine", "weightfree", "--data", str(labeled), "--out", str(tmp_path / "r"), "--grounding", str(bad)],
    )
    assert str(bad) in one_line_error(res)
    assert not (tmp_path / "r" / "proposals").exists()  # failed before the engine ran


def test_an_image_that_crashes_the_engine_is_quarantined_and_counted(ray_cluster, tmp_path):
    write_split(tmp_path / "d" / "val", poison=True)
    m = evaluate_engine(engine(0), str(tmp_path / "d"), str(tmp_path / "r"), split="val", progress=False)
    im = m["images"]
    assert (im["evaluated"], im["with_proposals"], im["quarantined"]) == (4, 3, 1)
    assert im["quarantine"][0]["kind"] == "crashed_engine"
    assert m["masks"]["recall@0.5"] == pytest.approx(4 / 5)  # its mask counts as missed
    assert "1 quarantined" in (tmp_path / "r" / "report.md").read_text()


def test_limit_and_grounding_with_a_tiny_model(ray_cluster, labeled, tmp_path):
    from engine_fixtures import save_tiny_unilseg

    ckpt = save_tiny_unilseg(tmp_path / "tiny.pt")
    res = CliRunner().invoke(
        main,
        ["eval-engine", "weightfree", "--data", str(labeled), "--out", str(tmp_path / "r")]
        + ["--grounding", str(ckpt), "--limit", "2", "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    assert "AR@100" in res.output and "2 images" in res.output
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    e = m["expressions"]
    assert e["method"] == "grounding" and e["reference"]["n"] == 3  # 3 texts on the first 2 images
    assert e["generated"]["n"] >= m["masks"]["n_proposals"] > 0
    assert 0 <= e["generated"]["hit_rate@0.5"] <= 1 and m["masks"]["n_images"] == 2


@pytest.mark.parametrize(
    "args, says",
    [
        (["no-such-engine"], "no-such-engine"),
        (["weightfree", "--preset", "unilseg-tiny"], "--preset goes with --grounding"),
    ],
)
def test_bad_arguments_are_one_line_before_anything_is_written(labeled, tmp_path, args, says):
    res = CliRunner().invoke(main, ["eval-engine", *args, "--data", str(labeled), "--out", str(tmp_path / "r")])
    assert says in one_line_error(res)
    assert not (tmp_path / "r").exists()
