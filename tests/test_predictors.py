"""unilseg.eval.predictors: the PNG forms saved masks come in."""

import numpy as np
import pytest
from eval_fixtures import H, W, box
from PIL import Image

from unilseg.eval.predictors import EvalError, PngPredictor, read_prediction_png


def test_read_prediction_png_modes(tmp_path):
    m = box(2, 12, 2, 12)
    Image.fromarray(m).save(tmp_path / "bit.png")  # mode "1"
    assert np.array_equal(read_prediction_png(tmp_path / "bit.png", "t"), m)
    Image.fromarray(np.stack([m.astype(np.uint8) * 255] * 3, -1)).save(tmp_path / "rgb.png")
    assert np.array_equal(read_prediction_png(tmp_path / "rgb.png", "t") > 0.5, m)
    Image.fromarray((m * 65535).astype(np.uint16)).save(tmp_path / "16.png")
    assert np.array_equal(read_prediction_png(tmp_path / "16.png", "t") > 0.5, m)
    p = Image.fromarray(m.astype(np.uint8), "P")
    p.putpalette([0, 0, 0, 255, 255, 255])
    p.save(tmp_path / "pal.png")
    assert np.array_equal(read_prediction_png(tmp_path / "pal.png", "t"), m)
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(EvalError, match="target t7: .*colour image"):
        read_prediction_png(tmp_path / "colour.png", "t7")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(EvalError, match="target t8: cannot read"):
        read_prediction_png(tmp_path / "bad.png", "t8")


def test_png_predictor_missing_file_is_none_and_missing_dir_an_error(tmp_path):
    from types import SimpleNamespace

    pred = PngPredictor(tmp_path)
    assert pred(None, SimpleNamespace(id="nope_0")) is None
    Image.fromarray(box(0, 2, 0, 2, 4, 4).astype(np.uint8) * 255).save(tmp_path / "k_0.png")
    assert np.array_equal(pred(None, SimpleNamespace(id="k_0")) > 0.5, box(0, 2, 0, 2, 4, 4))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PngPredictor(tmp_path / "absent")
