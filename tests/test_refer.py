import os
import pickle

import numpy as np
import pytest
from converter_fixtures import (
    box_mask,
    box_polygon,
    compressed_rle,
    polygon_mask,
    read_quarantine,
    write_image,
    write_json,
)

from shards.converters import ConvertError
from shards.converters.convert import convert
from shards.converters.refer import split_matches
from shards.converters.safe_pickle import UnsafePickleError
from shards.reader import ShardReader

H, W = 24, 32


def _ref(ref_id, ann_id, image_id, split, *sents, cat=1):
    sentences = [{"tokens": s.split(), "raw": s, "sent_id": ref_id * 10 + i, "sent": s} for i, s in enumerate(sents)]
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "sentences": sentences,
        "category_id": cat,
        "sent_ids": [s["sent_id"] for s in sentences],
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
    }


def _refer_fixture(root, refs, annotations, image_ids=(1, 2, 3), missing=()):
    """refer's layout: root/refcoco/{refs(unc).p, instances.json}, root/images/mscoco/images/train2014/."""
    src = root / "refcoco"
    src.mkdir(parents=True)
    (src / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    images = [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": W, "height": H} for i in image_ids]
    write_json(
        src / "instances.json",
        {
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": 1, "name": "person", "supercategory": "person"},
                {"id": 18, "name": "dog", "supercategory": "animal"},
            ],
        },
    )
    for im in images:
        if im["id"] not in missing:
            write_image(root / "images/mscoco/images/train2014" / im["file_name"], H, W, im["id"])
    return src


def _ann(ann_id, image_id, segm, cat=1):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": segm,
        "iscrowd": 0,
        "area": 1.0,
        "bbox": [0, 0, 1, 1],
    }


def test_refcoco_layout(tmp_path):
    poly = box_polygon(2, 3, 12, 15)
    dog = box_mask(H, W, 20, 5, 30, 20)
    anns = [
        _ann(101, 1, poly),
        _ann(102, 1, compressed_rle(dog), cat=18),
        _ann(103, 2, box_polygon(0, 0, 5, 5)),
        _ann(104, 2, box_polygon(6, 6, 20, 20)),
        _ann(105, 3, box_polygon(1, 1, 9, 9)),
    ]
    refs = [
        _ref(1, 101, 1, "train", "man on left", "guy in red", "man on left"),
        _ref(2, 102, 1, "train", "dog", cat=18),
        _ref(3, 103, 2, "testA", "woman"),
        _ref(4, 104, 2, "testB", "the lamp"),
        _ref(5, 105, 3, "val", "kid"),
    ]
    src = _refer_fixture(tmp_path / "data", refs, anns)
    out = tmp_path / "out"
    summary = convert("refcoco", src, out, "train", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 0
    (s,) = list(ShardReader(out / "train").samples())
    assert s.image.id == "1" and s.image.source == "refcoco(unc)" and s.rgb.shape == (H, W, 3)
    t1, t2 = s.targets
    assert t1.texts == ["man on left", "guy in red"] and t2.texts == ["dog"]  # duplicates dropped, order kept
    assert (t1.task, t1.granularity, t2.task, t2.granularity) == ("res", "instance", "res", "instance")
    assert np.array_equal(t1.mask_array(), polygon_mask(poly, H, W))
    assert np.array_equal(t2.mask_array(), dog)
    assert t1.provenance["ref_id"] == 1 and t1.provenance["ann_id"] == 101 and t2.provenance["category"] == "dog"

    convert("refcoco", src, out, "testA", progress=False)
    (s,) = list(ShardReader(out / "testA").samples())
    assert [t.texts for t in s.targets] == [["woman"]]
    convert("refcoco", src, out, "test", progress=False)  # refer's "test": every test split
    (s,) = list(ShardReader(out / "test").samples())
    assert [t.texts for t in s.targets] == [["woman"], ["the lamp"]]
    assert convert("refcoco", src, out, "train", progress=False)["skipped"] == 1


def test_refcoco_bad_records(tmp_path):
    ok = box_polygon(2, 2, 10, 10)
    anns = [
        _ann(201, 1, ok),
        _ann(202, 1, box_polygon(5, 5, 60, 10)),  # outside the 32x24 image
        _ann(203, 1, [[1, 1, 2, 2]]),  # degenerate: 2 points
        _ann(204, 1, ok, cat=99),  # unknown category
        _ann(205, 1, {"size": [H + 1, W], "counts": compressed_rle(np.ones((H + 1, W), bool))["counts"]}),
        _ann(206, 1, {"size": [H, W], "counts": "!!garbage"}),
        _ann(207, 2, ok),
    ]  # image 2 has no file
    refs = [
        _ref(1, 201, 1, "train", "good one"),
        _ref(2, 202, 1, "train", "outside"),
        _ref(3, 203, 1, "train", "degenerate"),
        _ref(4, 204, 1, "train", "unknown cat"),
        _ref(5, 205, 1, "train", "wrong size"),
        _ref(6, 206, 1, "train", "garbage"),
        _ref(7, 207, 2, "train", "no image"),
        _ref(8, 999, 1, "train", "no ann"),
        _ref(9, 201, 1, "train", " "),
    ]
    src = _refer_fixture(tmp_path / "data", refs, anns, image_ids=(1, 2), missing={2})
    summary = convert("refcoco", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 8
    q = read_quarantine(tmp_path / "out/train")
    assert "polygon outside the image" in q["ref 2"] and "degenerate polygon" in q["ref 3"]
    assert "unknown category id 99" in q["ref 4"] and "RLE size [25, 32] differs" in q["ref 5"]
    assert "undecodable RLE" in q["ref 6"] and "annotation 999 is not in instances.json" in q["ref 8"]
    assert "no non-empty sentence" in q["ref 9"]
    assert q["COCO_train2014_000000000002.jpg"].startswith("missing image file")
    (s,) = list(ShardReader(tmp_path / "out/train").samples())
    assert [t.texts for t in s.targets] == [["good one"]]


def test_refcoco_options_and_errors(tmp_path):
    anns = [_ann(1, 1, box_polygon(2, 2, 10, 10))]
    src = _refer_fixture(tmp_path / "data", [_ref(1, 1, 1, "val", "x")], anns, image_ids=(1,))
    (src / "refs(google).p").write_bytes(pickle.dumps([_ref(1, 1, 1, "train", "y")]))
    with pytest.raises(ConvertError, match="several"):
        convert("refcoco", src, tmp_path / "o1", "val", progress=False)
    convert("refcoco", src, tmp_path / "o2", "train", progress=False, split_by="google")
    (s,) = list(ShardReader(tmp_path / "o2/train").samples())
    assert s.targets[0].texts == ["y"] and s.image.source == "refcoco(google)"
    with pytest.raises(ConvertError, match="no refs of split 'testB'; the refs file has val"):
        convert("refcoco", src, tmp_path / "o3", "testB", progress=False, split_by="unc")
    # explicit images folder
    os.rename(tmp_path / "data/images", tmp_path / "elsewhere")
    convert(
        "refcoco",
        src,
        tmp_path / "o4",
        "val",
        progress=False,
        split_by="unc",
        images=str(tmp_path / "elsewhere/mscoco/images/train2014"),
    )
    assert len(list(ShardReader(tmp_path / "o4/val").samples())) == 1


def test_refcoco_refuses_malicious_refs(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    src = _refer_fixture(tmp_path / "data", [], [], image_ids=(1,))
    (src / "refs(unc).p").write_bytes(pickle.dumps([{"ref_id": 1, "sentences": Exploit()}]))
    with pytest.raises(UnsafePickleError, match="refusing to load the global"):
        convert("refcoco", src, tmp_path / "out", "train", progress=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "ref_split, wanted, expected",
    [
        ("train", "train", True),
        ("testA", "testA", True),
        ("testAB", "testB", True),
        ("testB", "testA", False),
        ("testA", "test", True),
        ("val", "test", False),
        ("train", "val", False),
    ],
)
def test_split_matches_refer(ref_split, wanted, expected):
    assert split_matches(ref_split, wanted) is expected
