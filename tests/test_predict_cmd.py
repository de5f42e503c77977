"""`unilseg predict`: a mask PNG of the image's size and an overlay, from our checkpoint format."""

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from cli import main
from unilseg.checkpoint import save_checkpoint
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
    res = CliRunner().invoke(
        main,
        ["predict", "--checkpoint", str(weights), str(tmp_path / "not.png"), "x", "--out", str(tmp_path / "m.png")],
    )
    assert res.exit_code != 0 and "not a readable image" in res.output
    res = CliRunner().invoke(
        main, ["predict", "--checkpoint", str(weights), str(img), "x", "--out", str(tmp_path / "m.png")]
    )
    assert res.exit_code != 0 and "--preset unilseg-swin-b" in res.output


def test_predict_follows_exif_orientation_of_a_phone_photo(tmp_path):
    """A JPEG stored in the sensor's orientation (40 wide, 24 high) with EXIF Orientation=6
    is shown rotated 90 degrees clockwise (24 wide, 40 high): the mask and the overlay are
    of the image as shown, and equal a prediction on the rotated pixels."""
    from PIL import ImageOps

    torch.manual_seed(0)
    model = build_model("unilseg-tiny").eval()
    ckpt = save_checkpoint(tmp_path / "latest.pt", model, step=1)
    sensor = np.zeros((24, 40, 3), np.uint8)
    sensor[:, :20] = (230, 30, 30)  # red on the sensor's left = on top once shown
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sensor).save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")).convert("RGB"))
    assert shown.shape == (40, 24, 3) and shown[5, 12, 0] > 200 and shown[35, 12, 0] < 60  # as a viewer shows it
    out, over = tmp_path / "mask.png", tmp_path / "over.png"
    res = CliRunner().invoke(
        main,
        [
            "predict",
            "--checkpoint",
            str(ckpt),
            str(tmp_path / "phone.jpg"),
            "the red half",
            "--out",
            str(out),
            "--overlay",
            str(over),
            "--threshold",
            "0.5",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "(24x40," in res.output
    mask = np.asarray(Image.open(out)) > 0
    assert mask.shape == (40, 24)
    np.testing.assert_array_equal(mask, predict(model, shown, "the red half", threshold=0.5))
    overlay = np.asarray(Image.open(over))
    np.testing.assert_array_equal(overlay[~mask], shown[~mask])  # drawn over the photo as shown


def test_empty_or_blank_expression_is_a_one_line_error(tmp_path):
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    for text in ("", "   ", "\t\n"):
        # the checkpoint does not exist: the expression is refused before anything is loaded
        res = CliRunner().invoke(
            main,
            ["predict", "--checkpoint", str(tmp_path / "none.pt"), str(img), text, "--out", str(tmp_path / "m.png")],
        )
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and "empty or non-string expression" in lines[0], res.output
    assert not (tmp_path / "m.png").exists()


def test_a_preset_beside_our_checkpoint_is_checked_not_dropped(tmp_path):
    """Our checkpoints carry their config: an unknown preset, or a known one that is not the
    checkpoint's, is a one-line error naming both; the checkpoint's own preset is accepted."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "latest.pt", build_model("unilseg-tiny").eval(), step=1)
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)

    def run(*preset):
        return CliRunner().invoke(
            main,
            ["predict", "--checkpoint", str(ckpt), str(img), "the square", "--out", str(tmp_path / "m.png"), *preset],
        )

    res = run("--preset", "no-such-preset")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "unknown preset 'no-such-preset'" in lines[0], res.output
    res = run("--preset", "unilseg-demo")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert "preset 'unilseg-demo' differs from the model" in lines[0] and "preset 'unilseg-tiny'" in lines[0]
    assert str(ckpt) in lines[0] and "input_size 96 vs 128" in lines[0]
    assert not (tmp_path / "m.png").exists()
    assert run("--preset", "unilseg-tiny").exit_code == 0 and (tmp_path / "m.png").exists()
