"""shards/converters/voc.py: PASCAL VOC 2012 segmentation -> "all <class>" semantic targets."""

import io

import numpy as np
import pytest
from converter_fixtures import read_quarantine, write_image
from PIL import Image

from common.errors import MissingInputError
from shards.converters.convert import convert, convert_splits, source_splits
from shards.reader import ShardReader
from shards.rle import rle_to_mask
from shards.verify import verify_split

H, W = 18, 24


def _voc_palette() -> list[int]:
    """The devkit's colour map (bit-interleaved), 256 RGB triples flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _write_mask(path, label: np.ndarray, mode: str = "P") -> None:
    """A class-index PNG as VOC ships it: mode P with the VOC palette (or RGB colours, wrongly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(label.astype(np.uint8)).convert("P")  # L -> P keeps the values as indices
    img.putpalette(_voc_palette())
    assert img.mode == "P" and np.array_equal(np.asarray(img), label)
    if mode == "RGB":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())


def _scene() -> np.ndarray:
    """person (15) on the left, dining table (11) on the right, a void (255) border between."""
    label = np.zeros((H, W), np.uint8)
    label[2:10, 1:8] = 15
    label[1:11, 0] = 255
    label[10:16, 12:22] = 11
    label[9, 11:23] = 255
    return label


def _voc(root):
    """A tiny VOC2012 tree: two good records and one of each kind of bad one."""
    src = root / "VOCdevkit" / "VOC2012"
    good = _scene()
    tv = np.zeros((H, W), np.uint8)
    tv[4:12, 6:18] = 20
    records = {
        "2007_000001": (good, "P"),
        "2007_000002": (tv, "P"),
        "2007_000003": (good[: H - 4], "P"),  # mask smaller than the image
        "2007_000004": (np.where(good == 15, 42, good), "P"),  # value 42: no such class
        "2007_000005": (np.where(good == 255, 255, 0), "P"),  # background and void only
        "2007_000006": (good, "RGB"),  # a colour rendering, not indices
    }
    for i, (label, mode) in records.items():
        write_image(src / "JPEGImages" / f"{i}.jpg", H, W, seed=int(i[-1]))
        _write_mask(src / "SegmentationClass" / f"{i}.png", label, mode)
    (src / "JPEGImages" / "2007_000007.jpg").write_bytes(b"not a jpeg")  # unreadable image
    _write_mask(src / "SegmentationClass" / "2007_000007.png", good)
    write_image(src / "JPEGImages" / "2007_000008.jpg", H, W)  # no mask
    _write_mask(src / "SegmentationClass" / "2007_000009.png", good)  # no image
    sets = src / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    train = [f"2007_00000{i}" for i in range(1, 10)]
    (sets / "train.txt").write_text("\n".join(train + ["2007_000001", ""]) + "\n")  # a repeat, a blank line
    (sets / "val.txt").write_text("2007_000002\n")
    (sets / "trainval.txt").write_text("\n".join(train + ["2007_000002"]) + "\n")
    return src


def test_voc_layout_and_bad_records(tmp_path):
    src = _voc(tmp_path)
    out = tmp_path / "voc"
    summary = convert("voc", src, out, "train", progress=False)
    assert (summary["written"], summary["skipped"], summary["quarantined"]) == (2, 0, 7)
    assert summary["counts"]["samples"] == 2 and summary["counts"]["targets"] == 3
    q = {k.split("/")[-1]: v for k, v in read_quarantine(out / "train").items()}
    assert "mask is 24x14, the image 24x18" in q["2007_000003.jpg"]
    assert "value(s) [42], outside 0..20 and 255" in q["2007_000004.jpg"]
    assert "only background (0) and void (255)" in q["2007_000005.jpg"]
    assert "is RGB; expected a palette (P) PNG" in q["2007_000006.jpg"]
    assert "not a readable image" in q["2007_000007.jpg"]
    assert "no mask SegmentationClass/2007_000008.png" in q["2007_000008.jpg"]
    assert "no JPEGImages/2007_000009.jpg" in q["2007_000009.jpg"]
    assert len(q) == 7

    s1, s2 = sorted(ShardReader(out / "train").samples(), key=lambda s: s.image.id)
    label = _scene()
    assert s1.image.id == "JPEGImages/2007_000001.jpg" and s1.image.source == "voc"
    assert (s1.image.width, s1.image.height) == (W, H)
    assert [t.texts for t in s1.targets] == [["all dining table"], ["all person"]]
    assert all((t.task, t.granularity, t.source) == ("semantic", "class", "voc") for t in s1.targets)
    for t, v, cls in zip(s1.targets, (11, 15), ("diningtable", "person")):
        assert np.array_equal(rle_to_mask(t.mask), label == v)  # void pixels belong to no target
        assert t.provenance == {"image_id": "2007_000001", "class_index": v, "class": cls}
    assert [t.texts for t in s2.targets] == [["all tv monitor"]]
    assert verify_split(out / "train").ok

    # a second run writes nothing new: every sample skipped, the same quarantine reasons once
    before = {p.name: p.read_bytes() for p in (out / "train").iterdir() if p.is_file()}
    again = convert("voc", src, out, "train", progress=False)
    assert (again["written"], again["skipped"]) == (0, 2)
    after = {p.name: p.read_bytes() for p in (out / "train").iterdir() if p.is_file()}
    assert after["quarantine.jsonl"] == before["quarantine.jsonl"]
    assert sorted(p for p in after if p.endswith(".tar")) == sorted(p for p in before if p.endswith(".tar"))


def test_voc_splits_come_from_the_imagesets_lists(tmp_path):
    src = _voc(tmp_path)
    assert source_splits("voc", src) == ["train", "val", "trainval"]
    got = convert_splits("voc", src, tmp_path / "voc", progress=False)
    assert list(got["splits"]) == ["train", "val", "trainval"]
    assert got["splits"]["val"]["counts"]["samples"] == 1
    assert got["splits"]["trainval"]["counts"]["samples"] == 2  # 2007_000002 is in it, once
    (sets := src / "ImageSets" / "Segmentation" / "trainval.txt").unlink()
    assert not sets.exists() and source_splits("voc", src) == ["train", "val"]


def test_voc_wrong_folder_is_one_user_error(tmp_path):
    src = _voc(tmp_path)
    with pytest.raises(MissingInputError, match="point SRC at the VOC2012 folder"):
        convert("voc", src.parent, tmp_path / "out", "train", progress=False)
    with pytest.raises(MissingInputError, match="no split of a voc source"):
        convert_splits("voc", src.parent, tmp_path / "out", progress=False)
