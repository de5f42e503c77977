import numpy as np
from converter_fixtures import (
    box_mask,
    box_polygon,
    compressed_rle,
    polygon_mask,
    read_quarantine,
    write_image,
    write_json,
)

from shards.converters.convert import convert
from shards.converters.parts import part_of
from shards.reader import ShardReader

H, W = 24, 32


def test_paco_layout(tmp_path):
    """datasets/paco/annotations/paco_lvis_v1_val.json with images in datasets/coco/val2017."""
    root = tmp_path / "datasets"
    bike, wheel1, wheel2 = box_mask(H, W, 2, 4, 20, 20), box_mask(H, W, 2, 14, 8, 20), box_mask(H, W, 14, 14, 20, 20)
    car, car_body = box_mask(H, W, 22, 2, 31, 12), box_mask(H, W, 23, 3, 30, 9)
    cats = [
        {"id": 1, "name": "bicycle", "supercategory": "OBJECT"},
        {"id": 2, "name": "car_(automobile)", "supercategory": "OBJECT"},
        {"id": 3, "name": "bicycle:wheel", "supercategory": "PART"},
        {"id": 4, "name": "car_(automobile):inner_body", "supercategory": "PART"},
    ]
    images = [
        {"id": 1, "file_name": "val2017/000000000001.jpg", "width": W, "height": H, "not_exhaustive_category_ids": [2]},
        {"id": 2, "file_name": "val2017/000000000002.jpg", "width": W, "height": H},
    ]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": compressed_rle(bike), "obj_ann_id": 10},
        {"id": 11, "image_id": 1, "category_id": 3, "segmentation": compressed_rle(wheel1), "obj_ann_id": 10},
        {"id": 12, "image_id": 1, "category_id": 3, "segmentation": compressed_rle(wheel2), "obj_ann_id": 10},
        {"id": 13, "image_id": 1, "category_id": 2, "segmentation": compressed_rle(car), "obj_ann_id": 13},
        {"id": 14, "image_id": 1, "category_id": 4, "segmentation": compressed_rle(car_body), "obj_ann_id": 13},
        {"id": 15, "image_id": 1, "category_id": 77, "segmentation": compressed_rle(car), "obj_ann_id": 15},
        {"id": 20, "image_id": 2, "category_id": 1, "segmentation": compressed_rle(bike), "obj_ann_id": 20},
    ]
    write_json(
        root / "paco/annotations/paco_lvis_v1_val.json",
        {"images": images, "annotations": anns, "categories": cats, "attributes": []},
    )
    write_image(root / "coco/val2017/000000000001.jpg", H, W, 1)  # image 2 is missing
    summary = convert("paco", root / "paco", tmp_path / "out", "val", progress=False)
    assert summary["written"] == 1 and summary["quarantined"] == 2
    q = read_quarantine(tmp_path / "out/val")
    assert "unknown category id 77" in q["val2017/000000000001.jpg#ann15"]
    assert q["val2017/000000000002.jpg"].startswith("missing image file")
    (s,) = list(ShardReader(tmp_path / "out/val").samples())
    assert s.image.source == "paco:paco_lvis_v1_val"
    got = [(t.texts, t.task, t.granularity) for t in s.targets]
    # the car is listed as not exhaustively annotated: no "all car" target, its part stays
    assert got == [
        (["the wheel of the bicycle"], "part", "part"),
        (["the inner body of the car"], "part", "part"),
        (["all bicycle"], "semantic", "class"),
    ]
    assert np.array_equal(s.targets[0].mask_array(), wheel1 | wheel2)
    assert s.targets[0].provenance["obj_ann_ids"] == [10]
    assert np.array_equal(s.targets[1].mask_array(), car_body) and np.array_equal(s.targets[2].mask_array(), bike)


def test_partimagenet_layout(tmp_path):
    """PartImageNet/val.json with images in PartImageNet/val/<wnid>/<file_name>."""
    src = tmp_path / "PartImageNet"
    cats = [
        {"id": 0, "name": "Quadruped Head", "supercategory": "Quadruped"},
        {"id": 1, "name": "Quadruped Body", "supercategory": "Quadruped"},
        {"id": 2, "name": "Car Tier", "supercategory": "Car"},
    ]
    head, body = box_polygon(2, 2, 8, 8), box_polygon(8, 4, 24, 16)
    images = [
        {"id": 5, "file_name": "n02085620_1.JPEG", "width": W, "height": H},
        {"id": 6, "file_name": "n02814533_2.JPEG", "width": W, "height": H},
    ]
    anns = [
        {"id": 1, "image_id": 5, "category_id": 0, "segmentation": head + [[3, 3, 4, 4]], "iscrowd": 0},
        {"id": 2, "image_id": 5, "category_id": 1, "segmentation": body, "iscrowd": 0},
        {"id": 3, "image_id": 5, "category_id": 1, "segmentation": [[1, 1, 2, 2], [5, 5]], "iscrowd": 0},
        {"id": 4, "image_id": 6, "category_id": 2, "segmentation": box_polygon(3, 10, 9, 20), "iscrowd": 0},
    ]
    write_json(src / "val.json", {"images": images, "annotations": anns, "categories": cats})
    write_image(src / "val/n02085620/n02085620_1.JPEG", H, W, 1)
    write_image(src / "val/n02814533/n02814533_2.JPEG", H, W, 2)
    summary = convert("partimagenet", src, tmp_path / "out", "val", progress=False)
    assert summary["written"] == 2 and summary["quarantined"] == 1
    assert "degenerate polygon" in read_quarantine(tmp_path / "out/val")["n02085620_1.JPEG#ann3"]
    dog, car = sorted(ShardReader(tmp_path / "out/val").samples(), key=lambda s: s.image.id)
    assert [t.texts for t in dog.targets] == [["the body of the quadruped"], ["the head of the quadruped"]]
    assert all((t.task, t.granularity) == ("part", "part") for t in dog.targets)
    assert np.array_equal(dog.targets[1].mask_array(), polygon_mask(head, H, W))  # the 2-point ring is dropped
    assert np.array_equal(dog.targets[0].mask_array(), polygon_mask(body, H, W))
    assert car.targets[0].texts == ["the tire of the car"]


def test_part_of():
    assert part_of({"name": "bicycle:wheel"}) == ("bicycle", "wheel")
    assert part_of({"name": "mug:inner_body", "supercategory": "PART"}) == ("mug", "inner body")
    assert part_of({"name": "Biped Hand", "supercategory": "Biped"}) == ("biped", "hand")
    assert part_of({"name": "bicycle", "supercategory": "OBJECT"}) is None
