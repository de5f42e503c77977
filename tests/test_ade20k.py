import numpy as np
import pytest
from conftest import encode
from converter_fixtures import read_quarantine, write_image

from shards.converters import ConvertError
from shards.converters.ade20k import load_class_names
from shards.converters.convert import convert
from shards.reader import ShardReader

H, W = 20, 28
# The first lines of the real objectInfo150.txt (tab-separated; some indices carry a space).
OBJECT_INFO = (
    "Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n2\t0.1072\t6046\t612\tbuilding, edifice\n"
    "3\t0.0878\t8265\t796\tsky\n4\t0.0621\t9336\t917\tfloor, flooring\n22 \t0.0074\t709\t75\twater\n"
)


def _label(path, arr, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(arr.astype(np.uint8)) if mode == "L" else encode(np.stack([arr] * 3, -1).astype(np.uint8)))


def _ade(root, n_classes_file=OBJECT_INFO):
    src = root / "ADEChallengeData2016"
    src.mkdir(parents=True)
    (src / "objectInfo150.txt").write_text(n_classes_file.replace("22 \t0.0074", "5\t0.0074"))
    (src / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\nADE_train_00000002 street\n")
    return src


def test_ade20k_layout_and_bad_records(tmp_path):
    src = _ade(tmp_path)
    label = np.zeros((H, W), np.uint8)
    label[:5] = 3  # sky
    label[5:12, :10] = 2  # building
    label[12:, :] = 4  # floor
    for i, (lab, mode) in enumerate(
        [(label, "L"), (np.full((H, W), 1), "L"), (np.full((H, W), 200), "L"), (label, "RGB"), (np.zeros((H, W)), "L")],
        start=1,
    ):
        write_image(src / f"images/training/ADE_train_{i:08d}.jpg", H, W, i)
        _label(src / f"annotations/training/ADE_train_{i:08d}.png", lab, mode)
    write_image(src / "images/training/ADE_train_00000006.jpg", H, W, 6)  # no annotation
    _label(src / "annotations/training/ADE_train_00000007.png", label)  # no image
    _label(src / "annotations/training/ADE_train_00000008.png", label[:10])
    write_image(src / "images/training/ADE_train_00000008.jpg", H, W, 8)

    summary = convert("ade20k", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 2 and summary["quarantined"] == 6
    q = {k.split("/")[-1]: v for k, v in read_quarantine(tmp_path / "out/train").items()}
    assert "class index 200, beyond the 5 classes" in q["ADE_train_00000003.jpg"]
    assert "expected a single-channel class-index PNG" in q["ADE_train_00000004.jpg"]
    assert "only 0 (other objects)" in q["ADE_train_00000005.jpg"]
    assert "no annotation PNG" in q["ADE_train_00000006.jpg"]
    assert "annotation without an image" in q["ADE_train_00000007.png"]
    assert "annotation is 28x10, the image 28x20" in q["ADE_train_00000008.jpg"]
    s1, s2 = sorted(ShardReader(tmp_path / "out/train").samples(), key=lambda s: s.image.id)
    assert s1.image.id == "images/training/ADE_train_00000001.jpg" and s1.image.source == "ade20k"
    assert [t.texts for t in s1.targets] == [["all building"], ["all sky"], ["all floor"]]
    assert all((t.task, t.granularity) == ("semantic", "class") for t in s1.targets)
    for t, v in zip(s1.targets, (2, 3, 4)):
        assert np.array_equal(t.mask_array(), label == v) and t.provenance["class_index"] == v
    assert s1.targets[0].provenance["scene"] == "airport_terminal"
    assert [t.texts for t in s2.targets] == [["all wall"]]


def test_ade20k_class_files(tmp_path):
    txt = tmp_path / "objectInfo150.txt"
    txt.write_text(OBJECT_INFO.replace("22 \t", "5 \t"))
    assert load_class_names(txt) == ["wall", "building", "sky", "floor", "water"]
    csv = tmp_path / "object150_info.csv"
    csv.write_text("Idx,Ratio,Train,Val,Stuff,Name\n1,0.1576,11664,1172,1,wall\n2,0.1072,6046,612,1,building;edifice\n")
    assert load_class_names(csv) == ["wall", "building"]
    plain = tmp_path / "mine.txt"
    plain.write_text("road\nperson, someone\n")
    assert load_class_names(plain) == ["road", "person"]
    gap = tmp_path / "gap.txt"
    gap.write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0\t0\t0\twall\n3\t0\t0\t0\tsky\n")
    with pytest.raises(ConvertError, match="1..N"):
        load_class_names(gap)


def test_ade20k_validation_split_with_user_classes(tmp_path):
    src = _ade(tmp_path)
    write_image(src / "images/validation/ADE_val_00000001.jpg", H, W, 1)
    _label(src / "annotations/validation/ADE_val_00000001.png", np.full((H, W), 2))
    mine = tmp_path / "classes.txt"
    mine.write_text("grass\nroad\n")
    convert("ade20k", src, tmp_path / "out", "val", progress=False, classes=str(mine))
    (s,) = list(ShardReader(tmp_path / "out/val").samples())
    assert s.targets[0].texts == ["all road"] and "scene" not in s.targets[0].provenance
