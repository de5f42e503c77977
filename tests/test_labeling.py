"""annotation_engine/review/labeling.py: the label config's names, brush RLE (the SDK's bytes,
faster), the alpha >= 128 rule for strokes drawn in a browser, reading an answer."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from annotation_engine.review.labeling import (
    LABEL_CONFIG,
    BrushError,
    brush_result,
    brush_to_mask,
    mask_to_brush,
    read_result,
    rle_encode,
    text_result,
    verdict_result,
)


def test_label_config_names_the_controls_tools_rely_on():
    for tag in ('<BrushLabels name="mask"', '<TextArea name="expression"', '<Choices name="verdict"'):
        assert tag in LABEL_CONFIG
    assert '<Choice value="accept"/>' in LABEL_CONFIG and '<Choice value="reject"/>' in LABEL_CONFIG


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 48), (120, 100)])
def test_brush_rle_is_the_sdks_byte_for_byte_and_round_trips(shape, rng):
    h, w = shape
    block = np.zeros(shape, bool)
    block[h // 4 : h // 2 + 1, : w // 2 + 1] = True
    for mask in (block, rng.random(shape) < 0.3, np.zeros(shape, bool), np.ones(shape, bool)):
        rle = mask_to_brush(mask)
        assert rle == list(mask2rle(mask.astype(np.uint8) * 255))
        assert (brush_to_mask(rle, h, w) == mask).all()


def test_rle_encode_matches_the_sdk_on_any_values_and_long_runs(rng):
    v = rng.integers(0, 256, 3000).astype(np.uint8)
    v[100:1500] = 7
    assert rle_encode(v) == list(encode_rle(v))
    long = np.zeros(70000 * 4, np.uint8)  # runs over 65536 are cut in pieces
    long[5:9] = 255
    assert rle_encode(long) == list(encode_rle(long))
    assert (decode_rle(bytes(rle_encode(long))) == long).all()


def test_soft_edges_count_where_alpha_is_at_least_128():
    alpha = np.array([[0, 1, 127, 128, 200, 255]], np.uint8)
    rgba = np.zeros((1, 6, 4), np.uint8)
    rgba[..., 3] = alpha
    assert brush_to_mask(rle_encode(rgba.ravel()), 1, 6).tolist() == [[False, False, False, True, True, True]]


def test_a_brush_of_another_size_is_refused():
    rle = mask_to_brush(np.ones((4, 4), bool))
    with pytest.raises(BrushError, match="not 5x4"):
        brush_to_mask(rle, 5, 4)
    r = brush_result(np.ones((4, 4), bool))
    with pytest.raises(BrushError, match="4x4, the image 5x4"):
        read_result([r], 5, 4)


def test_read_result_takes_verdict_text_and_the_union_of_strokes():
    a, b = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    a[0, 0], b[5, 5] = True, True
    got = read_result(
        [brush_result(a, "1"), brush_result(b, "2"), text_result("  the red one "), verdict_result("accept")], 6, 6
    )
    assert got["verdict"] == "accept" and got["text"] == "the red one"
    assert got["mask"].sum() == 2 and got["mask"][0, 0] and got["mask"][5, 5]
    assert read_result([verdict_result("reject")], 6, 6) == {"verdict": "reject", "mask": None, "text": None}
