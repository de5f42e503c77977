import io

import numpy as np
import pytest
from conftest import encode
from PIL import Image, ImageOps

from shards.images import ImageError, decode_image, prepare_image


def test_jpeg_and_png_bytes_are_kept(rng):
    arr = rng.integers(0, 255, (12, 9, 3), dtype=np.uint8)
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png")]:
        data = encode(arr, fmt)
        st = prepare_image(data)
        assert st.data == data and st.ext == ext and (st.width, st.height) == (9, 12)
        assert np.array_equal(decode_image(st.data), st.rgb)


@pytest.mark.parametrize("data, reason", [(b"", "empty file"), (b"this is not an image", "not a readable image")])
def test_unreadable_inputs(data, reason):
    with pytest.raises(ImageError, match=reason):
        prepare_image(data)


def test_truncated_jpeg_is_rejected(rng):
    data = encode(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(ImageError):
        prepare_image(data[: len(data) // 2])


def test_decompression_bomb_over_pixel_limit(rng):
    data = encode(np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match="over the limit"):
        prepare_image(data, max_pixels=5000)


def test_exif_rotated_jpeg_is_stored_as_seen():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # white band on the left of the raw (unrotated) pixels
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=100)
    st = prepare_image(buf.getvalue())
    seen = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))).convert("RGB"))
    assert (st.width, st.height) == (10, 20) and st.ext == "png"
    assert np.array_equal(st.rgb, seen)
    # any reader of the stored bytes gets the displayed orientation, without EXIF handling
    assert np.array_equal(decode_image(st.data), seen)
    assert st.rgb[:5].mean() > 200 and st.rgb[-5:].mean() < 50  # band is now on top


def test_cmyk_16bit_grey_rgba_become_readable_rgb(rng):
    rgb = rng.integers(0, 255, (8, 6, 3), dtype=np.uint8)
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG")
    st = prepare_image(cmyk.getvalue())
    assert st.ext == "png" and st.rgb.shape == (8, 6, 3)
    assert np.array_equal(decode_image(st.data), st.rgb)

    deep = np.arange(48, dtype=np.uint16).reshape(8, 6) * 1000
    b16 = io.BytesIO()
    Image.fromarray(deep).save(b16, format="PNG")
    st = prepare_image(b16.getvalue())
    expected = (deep / 65535.0 * 255.0 + 0.5).astype(np.uint8)  # full 16-bit range mapped to 8 bits
    assert st.rgb.shape == (8, 6, 3) and np.array_equal(st.rgb[..., 0], expected)
    assert np.array_equal(decode_image(st.data), st.rgb)

    grey = prepare_image(encode(rgb[..., 0]))
    assert grey.rgb.shape == (8, 6, 3) and np.array_equal(grey.rgb[..., 0], rgb[..., 0])

    rgba = np.dstack([rgb, np.full((8, 6), 128, np.uint8)])
    st = prepare_image(encode(rgba))
    assert np.array_equal(st.rgb, rgb) and np.array_equal(decode_image(st.data), rgb)
