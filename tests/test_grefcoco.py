import numpy as np
import pytest
from converter_fixtures import box_mask, compressed_rle, read_quarantine, uncompressed_rle, write_image, write_json

from shards.converters import ConvertError
from shards.converters.convert import convert
from shards.reader import ShardReader

H, W = 20, 30


def _gref(ref_id, ann_ids, image_id, split, sent, no_target=False):
    cats = [] if no_target else [1] * len(ann_ids)
    return {
        "ref_id": ref_id,
        "ann_id": ann_ids,
        "image_id": image_id,
        "split": split,
        "no_target": no_target,
        "category_id": cats,
        "file_name": f"COCO_train2014_{image_id:012d}.jpg",
        "sent_ids": [ref_id],
        "sentences": [{"tokens": sent.split(), "raw": sent, "sent_id": ref_id, "sent": sent}],
    }


def _fixture(root, grefs, anns, missing=()):
    """ReLA's layout: root/grefcoco/{grefs(unc).json, instances.json}, root/images/train2014/."""
    src = root / "grefcoco"
    write_json(src / "grefs(unc).json", grefs)
    images = [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": W, "height": H} for i in (1, 2)]
    write_json(
        src / "instances.json",
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person", "supercategory": "person"}]},
    )
    for im in images:
        if im["id"] not in missing:
            write_image(root / "images/train2014" / im["file_name"], H, W, im["id"])
    return src


def _ann(ann_id, image_id, mask, crowd=0):
    segm = uncompressed_rle(mask) if crowd else compressed_rle(mask)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "segmentation": segm, "iscrowd": crowd}


def test_grefcoco_single_multi_and_no_target(tmp_path):
    a, b, c = box_mask(H, W, 1, 1, 8, 8), box_mask(H, W, 12, 2, 20, 15), box_mask(H, W, 22, 10, 29, 19)
    anns = [_ann(11, 1, a), _ann(12, 1, b), _ann(13, 1, c, crowd=1), _ann(21, 2, a)]
    grefs = [
        _gref(1, [11], 1, "train", "left man"),
        _gref(2, [11, 12], 1, "train", "two people"),
        _gref(3, [-1], 1, "train", "the giraffe", no_target=True),
        _gref(4, [12, 13], 1, "train", "people right"),  # the crowd region is left out, as ReLA does
        _gref(5, [21], 2, "val", "someone"),
    ]
    src = _fixture(tmp_path / "data", grefs, anns)
    summary = convert("grefcoco", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 0
    (s,) = list(ShardReader(tmp_path / "out/train").samples())
    assert s.image.source == "grefcoco(unc)"
    single, multi, none, right = s.targets
    assert all(t.task == "gres" for t in s.targets)
    assert single.texts == ["left man"] and single.granularity == "instance"
    assert np.array_equal(single.mask_array(), a)
    assert multi.texts == ["two people"] and multi.granularity == "group"
    assert np.array_equal(multi.mask_array(), a | b) and multi.provenance["ann_ids"] == [11, 12]
    assert none.texts == ["the giraffe"] and none.mask is None and none.provenance["no_target"]
    assert right.granularity == "instance" and np.array_equal(right.mask_array(), b)
    info = ShardReader(tmp_path / "out/train").info["counts"]
    assert info["by_granularity"] == {"instance": 3, "group": 1} and info["by_task"] == {"gres": 4}


def test_grefcoco_bad_records(tmp_path):
    a = box_mask(H, W, 1, 1, 8, 8)
    anns = [
        _ann(11, 1, a),
        _ann(12, 1, a, crowd=1),
        _ann(21, 2, a),
        {"id": 14, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 50, 0, 50, 5]], "iscrowd": 0},
    ]
    grefs = [
        _gref(1, [11], 1, "train", "fine"),
        _gref(2, [11, 99], 1, "train", "missing ann"),
        _gref(3, [11], 1, "train", "contradiction", no_target=True),
        _gref(4, [12], 1, "train", "crowd only"),
        _gref(5, [21], 2, "train", "no image file"),
        _gref(6, [11, 14], 1, "train", "outside"),
        _gref(7, [21], 1, "train", "other image"),
    ]
    src = _fixture(tmp_path / "data", grefs, anns, missing={2})
    summary = convert("grefcoco", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 6
    q = read_quarantine(tmp_path / "out/train")
    assert "annotation 99 is not in instances.json" in q["gref 2"]
    assert "marked no_target but lists annotations [11]" in q["gref 3"]
    assert "crowd" in q["gref 4"] and "polygon outside the image" in q["gref 6"]
    assert "belongs to image 2" in q["gref 7"]
    assert q["COCO_train2014_000000000002.jpg"].startswith("missing image file")
    with pytest.raises(ConvertError, match="no refs of split 'testA'; the refs file has train"):
        convert("grefcoco", src, tmp_path / "out", "testA", progress=False)
