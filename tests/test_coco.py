import numpy as np
from conftest import encode
from converter_fixtures import (
    box_mask,
    box_polygon,
    compressed_rle,
    polygon_mask,
    read_quarantine,
    uncompressed_rle,
    write_image,
    write_json,
)

from shards.converters.coco_json import clean_name
from shards.converters.convert import convert
from shards.reader import ShardReader

H, W = 24, 32
CATS = [
    {"id": 1, "name": "person", "supercategory": "person", "isthing": 1},
    {"id": 18, "name": "dog", "supercategory": "animal", "isthing": 1},
    {"id": 187, "name": "wall-other-merged", "supercategory": "wall", "isthing": 0},
]


def _images(src, ids, folder="val2017", missing=()):
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H} for i in ids]
    for im in images:
        if im["id"] not in missing:
            write_image(src / folder / im["file_name"], H, W, im["id"])
    return images


def _ann(ann_id, image_id, cat, segm, crowd=0):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": segm,
        "iscrowd": crowd,
        "area": 1.0,
        "bbox": [0, 0, 1, 1],
    }


def test_coco_instances_layout(tmp_path):
    src = tmp_path / "coco"
    p1, p2 = box_polygon(1, 1, 8, 10), box_polygon(10, 2, 16, 12)
    crowd, dog = box_mask(H, W, 18, 0, 24, 6), box_mask(H, W, 20, 10, 31, 23)
    anns = [
        _ann(1, 1, 1, p1),
        _ann(2, 1, 1, p2),
        _ann(3, 1, 1, uncompressed_rle(crowd), crowd=1),
        _ann(4, 1, 18, compressed_rle(dog)),
        _ann(5, 2, 1, p1),
    ]
    write_json(
        src / "annotations/instances_val2017.json",
        {"images": _images(src, [1, 2, 3]), "annotations": anns, "categories": CATS},
    )
    summary = convert("coco-instances", src, tmp_path / "out", "val", progress=False)
    assert summary["written"] == 2 and summary["quarantined"] == 0  # image 3 has no annotation: nothing to write
    s1, s2 = sorted(ShardReader(tmp_path / "out/val").samples(), key=lambda s: s.image.id)
    assert s1.image.source == "coco:instances_val2017"
    person, dog_t = s1.targets
    assert person.texts == ["all person"] and (person.task, person.granularity) == ("semantic", "class")
    assert np.array_equal(person.mask_array(), polygon_mask(p1, H, W) | polygon_mask(p2, H, W) | crowd)
    assert dog_t.texts == ["all dog"] and np.array_equal(dog_t.mask_array(), dog)
    assert [t.texts for t in s2.targets] == [["all person"]]

    convert("coco-instances", src, tmp_path / "inst", "val", progress=False, instances=True)
    s1 = next(s for s in ShardReader(tmp_path / "inst/val").samples() if s.image.id == "1")
    assert [(t.texts[0], t.task, t.granularity) for t in s1.targets] == [
        ("all person", "semantic", "class"),
        ("the person", "instance", "instance"),
        ("the person", "instance", "instance"),
        ("all dog", "semantic", "class"),
        ("the dog", "instance", "instance"),
    ]
    assert np.array_equal(s1.targets[2].mask_array(), polygon_mask(p2, H, W))  # crowd is no instance


def test_coco_instances_bad_records(tmp_path):
    src = tmp_path / "coco"
    ok = box_polygon(1, 1, 8, 10)
    anns = [
        _ann(1, 1, 1, ok),
        _ann(2, 1, 42, ok),
        _ann(3, 1, 1, [[0, 0, 1, 1]]),
        _ann(4, 1, 1, {"size": [H, W + 2], "counts": compressed_rle(np.ones((H, W + 2), bool))["counts"]}),
        _ann(5, 1, 1, box_polygon(-10, 0, 5, 5)),
        _ann(6, 2, 1, ok),
        _ann(7, 9, 1, ok),
    ]
    write_json(
        src / "annotations/instances_train2017.json",
        {"images": _images(src, [1, 2], "train2017", missing={2}), "annotations": anns, "categories": CATS},
    )
    summary = convert("coco-instances", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 6
    q = read_quarantine(tmp_path / "out/train")
    assert "unknown category id 42" in q["000000000001.jpg#ann2"]
    assert "degenerate polygon" in q["000000000001.jpg#ann3"]
    assert "RLE size [24, 34] differs from image size [24, 32]" in q["000000000001.jpg#ann4"]
    assert "polygon outside the image" in q["000000000001.jpg#ann5"]
    assert "not in the images list" in q["image 9#ann7"]
    assert q["000000000002.jpg"].startswith("missing image file")
    (s,) = list(ShardReader(tmp_path / "out/train").samples())
    assert np.array_equal(s.targets[0].mask_array(), polygon_mask(ok, H, W))


def _panoptic_png(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    path.write_bytes(encode(rgb, "PNG"))


def test_coco_panoptic_layout_and_bad_records(tmp_path):
    src = tmp_path / "coco"
    ids = np.zeros((H, W), np.int64)
    ids[:, :10] = 2_000_000  # wall (stuff): an id that needs all three channels
    ids[2:8, 12:18] = 300  # person 1
    ids[10:20, 12:18] = 301  # person 2
    ids[0:5, 20:30] = 77  # crowd person
    ids[15:24, 22:32] = 5  # dog
    segs = [
        {"id": 2_000_000, "category_id": 187, "iscrowd": 0},
        {"id": 300, "category_id": 1, "iscrowd": 0},
        {"id": 301, "category_id": 1, "iscrowd": 0},
        {"id": 77, "category_id": 1, "iscrowd": 1},
        {"id": 5, "category_id": 18, "iscrowd": 0},
        {"id": 9, "category_id": 555, "iscrowd": 0},
    ]
    png_dir = src / "annotations/panoptic_val2017"
    _panoptic_png(png_dir / "000000000001.png", ids)
    records = [
        {"image_id": 1, "file_name": "000000000001.png", "segments_info": segs},
        {"image_id": 2, "file_name": "000000000002.png", "segments_info": segs[:2]},
        {"image_id": 7, "file_name": "000000000007.png", "segments_info": segs[:2]},
    ]
    write_json(
        src / "annotations/panoptic_val2017.json",
        {"images": _images(src, [1, 2]), "annotations": records, "categories": CATS},
    )
    summary = convert("coco-panoptic", src, tmp_path / "out", "val", progress=False, instances=True)
    assert summary["written"] == 1 and summary["quarantined"] == 3
    q = read_quarantine(tmp_path / "out/val")
    assert "unknown category id 555" in q["000000000001.png#segment9"]
    assert q["000000000002.jpg"].startswith("missing panoptic PNG")
    assert "not in the images list" in q["000000000007.png"]
    (s,) = list(ShardReader(tmp_path / "out/val").samples())
    got = [(t.texts[0], t.task, t.granularity) for t in s.targets]
    assert got == [
        ("all person", "semantic", "class"),
        ("the person", "instance", "instance"),
        ("the person", "instance", "instance"),
        ("all dog", "semantic", "class"),
        ("the dog", "instance", "instance"),
        ("all wall", "semantic", "class"),
    ]  # stuff: no instance
    assert np.array_equal(s.targets[0].mask_array(), np.isin(ids, [300, 301, 77]))
    assert np.array_equal(s.targets[2].mask_array(), ids == 301)
    assert np.array_equal(s.targets[5].mask_array(), ids == 2_000_000)


def test_clean_name():
    assert clean_name("wall-other-merged") == "wall" and clean_name("tree-merged") == "tree"
    assert clean_name("car_(automobile)") == "car" and clean_name("trash_can") == "trash can"
    assert clean_name("Quadruped Head") == "quadruped head" and clean_name("floor-wood") == "floor wood"
