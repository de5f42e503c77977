import json
import re

import numpy as np
from conftest import encode
from PIL import Image

from shards.converters.convert import convert
from shards.reader import ShardReader
from shards.verify import verify_split


def _write(path, arr, fmt="PNG", **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(arr, fmt, **kw))


def _mask(h, w):
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : h // 2, w // 4 : w // 2] = 255
    return m


def test_duts_layout_with_bad_inputs(tmp_path, rng):
    src = tmp_path / "DUTS-TR"
    img_dir, mask_dir = src / "DUTS-TR-Image", src / "DUTS-TR-Mask"
    names = ["ILSVRC2012 a.b", "çà et là", "plain"]
    for n in names:
        _write(img_dir / f"{n}.jpg", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), "JPEG")
        _write(mask_dir / f"{n}.png", _mask(20, 30))
    _write(img_dir / "nomask.jpg", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), "JPEG")
    _write(mask_dir / "orphan.png", _mask(20, 30))
    (img_dir / "zero.jpg").write_bytes(b"")
    _write(mask_dir / "zero.png", _mask(20, 30))
    (img_dir / "corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    _write(mask_dir / "corrupt.png", _mask(20, 30))
    (img_dir / "text.jpg").write_bytes(b"not an image at all")  # PIL's message names its BytesIO object
    _write(mask_dir / "text.png", _mask(20, 30))
    _write(img_dir / "wrongsize.jpg", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), "JPEG")
    _write(mask_dir / "wrongsize.png", _mask(10, 30))
    # EXIF-rotated: raw 30x20 pixels displayed as 20x30, mask drawn on the displayed image
    exif = Image.Exif()
    exif[0x0112] = 6
    _write(img_dir / "rotated.jpg", rng.integers(0, 255, (30, 20, 3), dtype=np.uint8), "JPEG", exif=exif.tobytes())
    _write(mask_dir / "rotated.png", _mask(20, 30))

    summary = convert("sod", src, tmp_path / "out", "train", progress=False)
    assert summary["written"] == 4 and summary["quarantined"] == 6
    quarantine = tmp_path / "out/train/quarantine.jsonl"
    reasons = [json.loads(l) for l in quarantine.read_text().splitlines()]
    by_input = {r["input"].split("/")[-1]: r["reason"] for r in reasons}
    assert "no mask" in by_input["nomask.jpg"] and "without an image" in by_input["orphan.png"]
    assert "empty file" in by_input["zero.jpg"] and "not a readable image" in by_input["corrupt.jpg"]
    assert "differs from image size" in by_input["wrongsize.jpg"]
    # no memory address in a reason: it reads the same on every run
    assert (
        by_input["text.jpg"] == "not a readable image: UnidentifiedImageError: cannot identify image file <_io.BytesIO>"
    )
    assert not any(re.search(r"at 0x[0-9a-f]+", r["reason"]) for r in reasons)
    samples = list(ShardReader(tmp_path / "out/train").samples())
    assert sorted(s.image.id.split("/")[-1] for s in samples) == sorted([f"{n}.jpg" for n in names] + ["rotated.jpg"])
    for s in samples:
        t = s.targets[0]
        assert t.texts == ["the most salient object"] and t.task == "sod"
        m = t.mask_array()
        assert m.shape == s.rgb.shape[:2] == (20, 30) and m[6, 9] and not m[0, 0]
    assert verify_split(tmp_path / "out/train").ok
    # a re-run skips everything already converted
    again = convert("sod", src, tmp_path / "out", "train", progress=False)
    assert again["written"] == 0 and again["skipped"] == 4
    assert len(quarantine.read_text().splitlines()) == len(reasons)  # the same reasons: not recorded twice


def test_cod_layout(tmp_path, rng):
    src = tmp_path / "TrainDataset"
    _write(src / "Imgs" / "COD10K-CAM-1.jpg", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "JPEG")
    _write(src / "GT" / "COD10K-CAM-1.png", _mask(16, 16))
    convert("cod", src, tmp_path / "out", "train", progress=False)
    (s,) = list(ShardReader(tmp_path / "out/train").samples())
    assert s.targets[0].texts == ["the camouflaged object"] and s.targets[0].task == "cod"
