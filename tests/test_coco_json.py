import numpy as np
import pytest
from converter_fixtures import compressed_rle, uncompressed_rle, write_json

from shards.converters import ConvertError
from shards.converters.coco_json import (
    annotation_problem,
    annotation_rle,
    find_one,
    index_coco,
    load_json,
    segmentation_problem,
)
from shards.rle import rle_to_mask


@pytest.mark.parametrize(
    "segm, reason",
    [
        ([], "empty segmentation"),
        ([[0, 0, 1, 1]], "degenerate polygon"),
        ([[0, 0, 5, 0, 10, 0]], "degenerate polygon"),  # collinear: zero area
        ([[0, 0, "a", 1, 2, 2]], "not numbers"),
        ([[0, 0, 25, 0, 25, 5]], "polygon outside the image"),
        ({"size": [10, 21], "counts": "PPYo1"}, "RLE size [10, 21] differs"),
        ({"size": [10, 20], "counts": "!!"}, "undecodable RLE"),
        ({"size": [10, 20], "counts": [5, 5]}, "undecodable RLE"),  # counts cover 10 pixels, not 200
        ("polygon", "unsupported segmentation type str"),
    ],
)
def test_segmentation_problems(segm, reason):
    assert reason in segmentation_problem(segm, 10, 20)


def test_good_segmentations_decode():
    m = np.zeros((10, 20), bool)
    m[2:5, 3:9] = True
    for segm in ([[0, 0, 20.5, 0, 20.5, 10, 0, 10]], compressed_rle(m), uncompressed_rle(m)):
        assert segmentation_problem(segm, 10, 20) is None
    assert np.array_equal(
        rle_to_mask(annotation_rle({"id": 1, "segmentation": uncompressed_rle(m)}, {"height": 10, "width": 20})), m
    )
    # a 2-point ring beside a good one is dropped, not fatal
    rle = annotation_rle(
        {"id": 2, "segmentation": [[3, 2, 9, 2, 9, 5, 3, 5], [1, 1, 2, 2]]}, {"height": 10, "width": 20}
    )
    assert rle_to_mask(rle).sum() > 0


def test_index_and_lookups(tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}, {"id": 2}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 3}],
        "categories": [{"id": 3, "name": "x"}],
    }
    idx = index_coco(doc)
    assert idx.anns_by_image[1][0]["id"] == 7
    assert "unknown category id 9" in annotation_problem({"id": 8, "category_id": 9}, idx.images[1], idx.cats)
    assert "not in the images list" in annotation_problem({"id": 8, "image_id": 5}, None, idx.cats)
    with pytest.raises(ConvertError, match="an annotation record lacks 'id'"):
        index_coco({"images": [], "categories": [], "annotations": [{"image_id": 1}]}, "x.json")
    with pytest.raises(ConvertError, match="not a COCO-style document"):
        index_coco([], "x.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConvertError, match="bad.json: not valid JSON"):
        load_json(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        load_json(tmp_path / "missing.json")


def test_find_one(tmp_path):
    write_json(tmp_path / "annotations/instances_val2017.json", {})
    assert find_one(tmp_path, ["annotations/instances_val*.json"], "x").name == "instances_val2017.json"
    write_json(tmp_path / "annotations/instances_val2014.json", {})
    with pytest.raises(ConvertError, match="several x files"):
        find_one(tmp_path, ["annotations/instances_val*.json"], "x")
    with pytest.raises(FileNotFoundError, match="no x under"):
        find_one(tmp_path, ["nothing*.json"], "x")


def test_streamed_index_equals_the_in_memory_one(tmp_path):
    from shards.converters.coco_json import stream_coco

    m = np.zeros((4, 4), bool)
    m[1:3, 1:3] = True
    doc = {
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 3, "segmentation": [[0.5, 0.5, 3, 0.5, 3, 3]], "area": 2.25},
            {"id": 8, "image_id": 2, "category_id": 3, "segmentation": uncompressed_rle(m)},
            {
                "id": 9,
                "image_id": 1,
                "category_id": 3,
                "segmentation": {"size": [4, 4], "counts": "05"},
                "caption": "é",
            },
        ],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 3, "name": "x"}],
    }  # COCO puts categories last
    write_json(tmp_path / "i.json", doc)
    want, got = index_coco(doc), stream_coco(tmp_path / "i.json")
    assert got.images == want.images and got.cats == want.cats
    assert dict(got.anns) == want.anns
    assert {i: got.anns_by_image[i] for i in got.anns_by_image} == dict(want.anns_by_image)
    assert got.anns_by_image[1][1]["caption"] == "é" and got.anns_by_image[5] == [] and 5 not in got.anns_by_image
    sub = stream_coco(tmp_path / "i.json", image_ids={2}, ann_ids={7, 99})
    assert set(sub.images) == {2} and set(sub.anns) == {7} and sub.anns.get(8) is None and len(sub.anns) == 1
    assert not stream_coco(tmp_path / "i.json", annotations=False).anns


@pytest.mark.parametrize(
    "text, msg",
    [
        ("{nope", "i.json: not valid JSON"),
        ('{"images": [], "categories": [], "annotations": [{"id": 1, "image_id": 1}', "i.json: not valid JSON"),
        ("[]", "not a COCO-style document"),
        ('{"images": {}, "categories": []}', "not a COCO-style document"),
        ('{"images": [], "categories": [], "annotations": [{"image_id": 1}]}', "an annotation record lacks 'id'"),
        ('{"images": [{"file_name": "a"}], "categories": []}', "an image record lacks 'id'"),
    ],
)
def test_streamed_index_rejects_what_the_in_memory_one_rejects(tmp_path, text, msg):
    from shards.converters.coco_json import stream_coco

    (tmp_path / "i.json").write_text(text)
    with pytest.raises(ConvertError, match=msg):
        stream_coco(tmp_path / "i.json")
    with pytest.raises(FileNotFoundError):
        stream_coco(tmp_path / "missing.json")
