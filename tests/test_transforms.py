import numpy as np
import pytest
import torch

from unilseg.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    letterbox_image,
    letterbox_mask,
    letterbox_matrices,
    logits_to_probs,
    normalize,
)


def test_matrix_for_wide_image():
    # 240 x 480 (h x w) into 480: scale 1, centred vertically with (480 - 240) / 2 = 120 rows above
    mat, inv = letterbox_matrices(240, 480, 480)
    np.testing.assert_allclose(mat, [[1, 0, 0], [0, 1, 120]], atol=1e-12)
    np.testing.assert_allclose(inv, [[1, 0, 0], [0, 1, -120]], atol=1e-12)


def test_matrix_for_tall_image():
    # 100 x 50 into 480: scale min(4.8, 9.6) = 4.8, new width 240, offset (480 - 240) / 2 = 120
    mat, inv = letterbox_matrices(100, 50, 480)
    np.testing.assert_allclose(mat, [[4.8, 0, 120], [0, 4.8, 0]], atol=1e-5)
    np.testing.assert_allclose(inv, [[1 / 4.8, 0, -25], [0, 1 / 4.8, 0]], atol=1e-5)


def test_border_colour_and_layout():
    img = np.zeros((240, 480, 3), np.uint8)
    x, mat = letterbox_image(img, 480)
    assert x.shape == (3, 480, 480) and x.dtype == np.float32
    # CLIP mean x 255 = (122.77, 116.75, 104.09) is rounded to (123, 117, 104) by the uint8 warp
    border = np.array([123, 117, 104], np.float32) / 255
    expected = (border - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    for r in (0, 119, 360, 479):
        np.testing.assert_allclose(x[:, r, 5], expected, atol=1e-6)
    black = (0 - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    for r in (120, 240, 359):
        np.testing.assert_allclose(x[:, r, 5], black, atol=1e-6)


def test_normalize_values():
    img = np.full((2, 2, 3), 255, np.uint8)
    out = normalize(img)
    np.testing.assert_allclose(out[:, 0, 0], (1 - np.array(CLIP_MEAN)) / np.array(CLIP_STD), rtol=1e-6)


def test_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        letterbox_image(np.zeros((4, 4), np.uint8), 32)


def test_mask_letterbox_is_nearest_and_aligned():
    mask = np.zeros((60, 120), bool)
    mask[10:20, 30:60] = True
    out = letterbox_mask(mask, 240)  # scale 2, 60 rows of border above
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 1}
    # cv2 maps output pixel x to source x / 2 and rounds half up (the image warp uses the same
    # matrix and convention): source rows 10..19 -> output rows 60 + 19 .. 60 + 38, cols 59..118
    rows, cols = np.nonzero(out)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (79, 98, 59, 118) and out.sum() == 20 * 60


def test_logits_to_probs_inverts_the_letterbox():
    h, w, size = 90, 150, 160
    mask = np.zeros((h, w), bool)
    mask[20:70, 40:110] = True
    boxed = letterbox_mask(mask, size).astype(np.float32)
    logits = torch.from_numpy(boxed[::4, ::4] * 20 - 10)  # (S/4, S/4): +10 inside, -10 outside
    out = logits_to_probs(logits[None, None], (h, w), size) > 0.5
    assert out.shape == (h, w) and out.dtype == bool
    # align_corners=True maps logit i to i * (S - 1) / (S/4 - 1), not 4i: the official pipeline
    # drifts by up to ~4 px towards the far edges, so only a band around the boundary may differ
    inner, outer = np.zeros_like(mask), np.ones_like(mask)
    inner[25:65, 45:105] = True
    outer[15:75, 35:115] = False
    assert out[inner].all() and not out[outer].any()
    probs = logits_to_probs(logits, (h, w), size)
    assert probs.dtype == np.float32 and 0 <= probs.min() and probs.max() <= 1
