"""`unilseg predict`: a mask PNG of the image's size and an overlay, from our checkpoint format."""

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from unilseg.checkpoint import save_checkpoint
from cli import main
from unilseg.model import build_model, predict


def test_predict_writes_mask_and_overlay(tmp_path):
    torch.manual_seed(0)
    model = build_model("unilseg-tiny").eval()
    ckpt = save_checkpoint(tmp_path / "latest.pt", model, step=3)
    rgb = (np.random.default_rng(0).random((90, 150, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    out, over = tmp_path / "o" / "mask.png", tmp_path / "o" / "over.png"
    args = ["predict", "--checkpoint", str(ckpt), str(tmp_path / "img.png"), "the red circle", "--out", str(out)]
    res = CliRunner().invoke(main, args + ["--overlay", str(over), "--threshold", "0.5"])
    assert res.exit_code == 0, res.output
    mask = np.asarray(Image.open(out))
    assert mask.shape == (90, 150) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask > 0, predict(model, rgb, "the red circle", threshold=0.5))  # same model
    overlay = np.asarray(Image.open(over))
    assert overlay.shape == (90, 150, 3)
    np.testing.assert_array_equal(overlay[mask == 0], rgb[mask == 0])  # only masked pixels are painted


def test_predict_errors_are_clear(tmp_path):
    (tmp_path / "not.png").write_bytes(b"nope")
    weights = tmp_path / "released.pth"
    torch.save({"state_dict": {}}, weights)
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    res = CliRunner().invoke(main, ["predict", "--checkpoint", str(weights), str(tmp_path / "not.png"), "x",
                                    "--out", str(tmp_path / "m.png")])
    assert res.exit_code != 0 and "not a readable image" in res.output
    res = CliRunner().invoke(main, ["predict", "--checkpoint", str(weights), str(img), "x", "--out",
                                    str(tmp_path / "m.png")])
    assert res.exit_code != 0 and "--preset unilseg-swin-b" in res.output
