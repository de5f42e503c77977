import numpy as np
from PIL import Image
from shard_fixtures import make_sample

from shards.preview import overlay, preview_split
from shards.writer import ShardWriter


def test_overlay_colours_only_the_mask():
    rgb = np.zeros((4, 4, 3), np.uint8)
    m = np.zeros((4, 4), bool)
    m[1:3, 1:3] = True
    out = overlay(rgb, m, (200, 0, 0))
    assert out[m][:, 0].min() > 0 and out[~m].max() == 0


def test_contact_sheet_is_written(tmp_path):
    with ShardWriter(tmp_path / "s") as w:
        for i in range(4):
            w.write(make_sample(i))
    n = preview_split(tmp_path / "s", tmp_path / "sheet.png", limit=5, columns=3)
    assert n == 5
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width == 3 * 224 and sheet.height > 224
    # text was drawn: the caption area holds dark pixels
    assert (np.asarray(sheet.convert("L"))[224:240] < 100).any()
