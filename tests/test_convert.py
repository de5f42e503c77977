"""shards/converters/convert.py and `unilseg convert`: every split a source has, each to DST/<split>;
--split narrows it; formats without splits write train."""

import json

import pytest
from click.testing import CliRunner
from converter_fixtures import box_mask, compressed_rle, write_image, write_json

from cli import main
from common.errors import MissingInputError
from shards.converters import ConvertError, converter_names
from shards.converters.convert import convert_splits, source_splits
from shards.manifest import read_dataset_json
from shards.synth import generate_shapes


@pytest.fixture(scope="module")
def refer_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("refer") / "synth"
    generate_shapes(src, images=20, seed=3, size=48)  # refer's layout; splits train/val/testA/testB
    return src


def _paco_val_only(root):
    """A PACO folder that has only paco_lvis_v1_val.json (no train file)."""
    m = box_mask(16, 16, 2, 2, 9, 9)
    write_json(
        root / "paco/annotations/paco_lvis_v1_val.json",
        {
            "images": [{"id": 1, "file_name": "val2017/1.jpg", "width": 16, "height": 16}],
            "annotations": [
                {"id": 5, "image_id": 1, "category_id": 1, "segmentation": compressed_rle(m), "obj_ann_id": 5}
            ],
            "categories": [{"id": 1, "name": "mug", "supercategory": "OBJECT"}],
            "attributes": [],
        },
    )
    write_image(root / "coco/val2017/1.jpg", 16, 16)
    return root / "paco"


def test_refcoco_source_writes_every_split_in_one_call(refer_src, tmp_path):
    out = tmp_path / "refcoco"
    res = CliRunner().invoke(main, ["convert", "refcoco", str(refer_src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()  # (tqdm draws on stderr)
    assert lines[0] == f"{refer_src}: splits found: train, val, testA, testB; converting train, val, testA, testB"
    assert [l.split(":")[0] for l in lines[1:]] == [f"{out}/{s}" for s in ("train", "val", "testA", "testB")]
    for split in ("train", "val", "testA", "testB"):
        info = read_dataset_json(out / split)
        assert info["status"] == "complete" and info["counts"]["samples"] > 0
    # --split narrows it (repeatable)
    res = CliRunner().invoke(
        main, ["convert", "refcoco", str(refer_src), "--out", str(tmp_path / "v"), "--split", "val", "--split", "testB"]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["testB", "val"]


def test_paco_folder_with_only_val_writes_val(tmp_path):
    src = _paco_val_only(tmp_path / "datasets")
    assert source_splits("paco", src) == ["val"]
    res = CliRunner().invoke(main, ["convert", "paco", str(src), "--out", str(tmp_path / "paco")])
    assert res.exit_code == 0, res.output
    assert "splits found: val; converting val" in res.output
    assert sorted(p.name for p in (tmp_path / "paco").iterdir()) == ["val"]
    # asking for a split the source lacks is one line naming what was looked for
    res = CliRunner().invoke(main, ["convert", "paco", str(src), "--out", str(tmp_path / "p2"), "--split", "train"])
    assert res.exit_code == 1 and "paco_lvis_v1_train.json" in res.output and "Traceback" not in res.output
    with pytest.raises(MissingInputError, match="no split of a paco source"):
        convert_splits("paco", tmp_path / "datasets" / "coco", tmp_path / "p3", progress=False)


def test_formats_name_the_splits_of_their_layouts(tmp_path):
    coco = tmp_path / "coco"
    for name in ("instances_train2017.json", "instances_val2017.json", "panoptic_val2017.json"):
        write_json(coco / "annotations" / name, {})
    assert source_splits("coco-instances", coco) == ["train", "val"]
    assert source_splits("coco-panoptic", coco) == ["val"]
    assert source_splits("coco-instances", coco, annotations="x.json") is None  # one explicit file: no splits
    ade = tmp_path / "ADEChallengeData2016"
    for d in (
        "images/training",
        "annotations/training",
        "images/validation",
        "annotations/validation",
        "images/testing",
    ):  # the challenge's test images come without annotations
        (ade / d).mkdir(parents=True)
    assert source_splits("ade20k", ade) == ["train", "val"]
    pin = tmp_path / "PartImageNet"
    write_json(pin / "val.json", {})
    write_json(pin / "annotations" / "test" / "test.json", {})
    assert source_splits("partimagenet", pin) == ["val", "test"]
    write_json(tmp_path / "grefcoco" / "grefs(unc).json", [{"split": s} for s in ("testB", "train", "val", "testA")])
    assert source_splits("grefcoco", tmp_path / "grefcoco") == ["train", "val", "testA", "testB"]
    assert source_splits("sod", tmp_path) is None  # image/mask folders have no splits of their own


def test_format_without_splits_writes_train_or_the_split_named(tmp_path):
    from test_cli import _sod_source

    _sod_source(tmp_path / "src")
    got = convert_splits("sod", tmp_path / "src", tmp_path / "ds", progress=False)
    assert got["found"] is None and list(got["splits"]) == ["train"]
    res = CliRunner().invoke(
        main, ["convert", "sod", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--split", "test"]
    )
    assert res.exit_code == 0 and "has no splits of its own; writing test" in res.output
    assert json.loads((tmp_path / "ds" / "test" / "dataset.json").read_text())["counts"]["samples"] == 3


def test_an_option_the_format_does_not_take_is_one_line_naming_its_options(tmp_path):
    from test_cli import _sod_source

    _sod_source(tmp_path / "src")
    res = CliRunner().invoke(
        main, ["convert", "sod", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--option", "foo=1"]
    )
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == "Error: format sod has no option foo; its options: name"
    assert not (tmp_path / "ds").exists()  # refused before anything is written
    with pytest.raises(ConvertError, match="has no option images"):
        convert_splits("sod", tmp_path / "src", tmp_path / "ds", images="x")


def test_help_lists_every_registered_format():
    res = CliRunner().invoke(main, ["convert", "--help"])
    formats = " ".join(res.output.split("Formats:", 1)[1].split("Options:", 1)[0].split())
    assert formats.rstrip(".").split(", ") == converter_names()
