"""shards/export_coco.py and `unilseg shards export coco`: any split as COCO JSON that
pycocotools opens; masks as RLE pixel for pixel, expressions as refer-style sentences."""

import json

import numpy as np
from click.testing import CliRunner
from pycocotools.coco import COCO
from shard_fixtures import make_sample

from cli import main
from shards.export_coco import export_coco
from shards.reader import ShardReader
from shards.writer import ShardWriter


def test_a_split_opens_in_pycocotools_with_masks_and_sentences(tmp_path):
    split = tmp_path / "d" / "train"
    with ShardWriter(split) as w:
        for i in range(4):
            w.write(make_sample(i))
    out = tmp_path / "coco.json"
    assert export_coco(split, out) == {"images": 4, "annotations": 4, "refs": 8}
    coco = COCO(str(out))
    doc = json.loads(out.read_text())
    by_key = {img["unilseg_key"]: img["id"] for img in doc["images"]}
    for s in ShardReader(split).samples(decode_images=False):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_key[s.key]]))
        assert len(anns) == 1 and (coco.annToMask(anns[0]).astype(bool) == s.targets[0].mask_array()).all()
        refs = [r for r in doc["refs"] if r["image_id"] == by_key[s.key]]
        assert [[x["sent"] for x in r["sentences"]] for r in refs] == [t.texts for t in s.targets]
        assert refs[0]["ann_id"] == anns[0]["id"] and refs[1]["ann_id"] == -1 and refs[1]["no_target"]
        assert anns[0]["area"] == int(s.targets[0].mask_array().sum())
    assert np.unique([a["category_id"] for a in doc["annotations"]]).tolist() == [1]


def test_the_command_writes_the_file_and_refuses_a_non_split(tmp_path):
    with ShardWriter(tmp_path / "d" / "val") as w:
        w.write(make_sample(1))
    res = CliRunner().invoke(
        main, ["shards", "export", "coco", str(tmp_path / "d"), "--split", "val", "--out", str(tmp_path / "c.json")]
    )
    assert res.exit_code == 0, res.output
    assert "1 images, 1 annotations, 2 refs" in res.output
    res = CliRunner().invoke(
        main, ["shards", "export", "coco", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.json")]
    )
    assert res.exit_code == 1 and "not a shard split" in res.output and not (tmp_path / "x.json").exists()
