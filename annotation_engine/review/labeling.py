"""What a review task looks like in Label Studio: the label config and the brush masks.

The label config (README "Reviewing in Label Studio"; tests and other tools rely on the names):
a ``BrushLabels`` control named ``mask`` (one label, ``target``), a ``TextArea`` named
``expression`` and a ``Choices`` named ``verdict`` with the values ``accept`` and ``reject``.
The engine's mask and expression arrive as a prediction (a pre-annotation the reviewer edits).

Brush masks travel as Label Studio's RLE: the thi.ng rle-pack bit stream of the mask's RGBA
pixels (row-major, 4 bytes a pixel; ``label_studio_sdk.converter.brush``). ``mask_to_brush``
encodes with numpy and gives the same bytes as the SDK's ``mask2rle`` (tests check); on 1,069
masks of 512 x 512 it took 22 s against the SDK's 25 s at load 17-84 (BENCHMARKS.md): no real
gain, kept because it needs no SDK import on the export path's hot loop. Masks drawn in the browser
have soft edges (alpha 1-254 on the border): ``brush_to_mask`` counts a pixel where its alpha
is >= 128.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from common.errors import UniLSegError

MASK, EXPRESSION, VERDICT, IMAGE = "mask", "expression", "verdict", "image"
ACCEPT, REJECT = "accept", "reject"
BRUSH_LABEL = "target"
ALPHA_THRESHOLD = 128  # a browser stroke's soft edge: alpha 1-254; inside 255

LABEL_CONFIG = f"""<View>
  <Header value="$expression"/>
  <Text name="score" value="engine score: $score ($key, target $target)"/>
  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>
  <BrushLabels name="{MASK}" toName="{IMAGE}">
    <Label value="{BRUSH_LABEL}" background="#00e5ff"/>
  </BrushLabels>
  <TextArea name="{EXPRESSION}" toName="{IMAGE}" editable="true" maxSubmissions="1"
            placeholder="the expression (edit it if it does not single out the mask)"/>
  <Choices name="{VERDICT}" toName="{IMAGE}" choice="single" required="true" showInline="true">
    <Choice value="{ACCEPT}"/>
    <Choice value="{REJECT}"/>
  </Choices>
</View>
"""

_RLE_SIZES = (3, 4, 8, 16)  # run-length field widths the SDK's encoder declares
_MAX_RUN = 1 << 16


class BrushError(UniLSegError):
    """A brush result that does not decode into a mask of its image's size."""


def rle_encode(values: np.ndarray) -> list[int]:
    """A 1-D uint8 array -> Label Studio RLE bytes (as ints), the SDK's ``encode_rle`` exactly.

    Every run is one code: flag 1, a 2-bit index of its length field, length - 1, the 8-bit
    value (a run of one: flag 0, index 0, three zero bits, the value); runs over 65536 are cut.
    """
    values = np.asarray(values, dtype=np.uint8).ravel()
    n = values.size
    header = (n << 21) | (7 << 16) | sum((s - 1) << (12 - 4 * i) for i, s in enumerate(_RLE_SIZES))
    if n:
        ends = np.append(np.flatnonzero(values[1:] != values[:-1]), n - 1)
        lengths = np.diff(np.append(-1, ends))
        vals = values[ends].astype(np.int64)
        chunks = (lengths - 1) // _MAX_RUN + 1  # long runs: full 65536 pieces, then the rest
        idx = np.repeat(np.arange(len(lengths)), chunks)
        first = np.r_[0, np.cumsum(chunks)[:-1]]
        pos = np.arange(len(idx)) - np.repeat(first, chunks)
        lens = np.where(pos < chunks[idx] - 1, _MAX_RUN, lengths[idx] - (chunks[idx] - 1) * _MAX_RUN)
        vals = vals[idx]
        size_idx = np.searchsorted([8, 16, 256], lens, side="left")  # 0..3: <=8, <=16, <=256, more
        width = np.array([3, 4, 8, 16])[size_idx]
        flag = (lens > 1).astype(np.int64)
        code = (flag << (2 + width + 8)) | (size_idx << (width + 8)) | ((lens - 1) << 8) | vals
        nbits = 11 + width
        shifts = nbits[:, None] - 1 - np.arange(27)[None, :]
        bits = (code[:, None] >> np.maximum(shifts, 0)) & 1
        body = bits[shifts >= 0].astype(np.uint8)
    else:
        body = np.zeros(0, np.uint8)
    head = (header >> np.arange(53)[::-1]) & 1  # 32-bit count, word size - 1, 4 field widths - 1.astype(np.uint8)
    stream = np.concatenate([head, body])
    pad = 8 - stream.size % 8  # the SDK always pads (a whole zero byte when already aligned)
    stream = np.concatenate([stream, np.zeros(pad, np.uint8)])
    return np.packbits(stream).tolist()


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """(H, W) bool mask -> the RLE of its RGBA image (every channel 255 on the mask, 0 off it)."""
    pixels = np.where(np.asarray(mask, bool).ravel(), 255, 0).astype(np.uint8)
    return rle_encode(np.repeat(pixels, 4))


def brush_to_mask(rle: list[int], height: int, width: int) -> np.ndarray:
    """Label Studio RLE -> (H, W) bool mask: alpha >= 128.

    Raises:
        BrushError: the RLE does not hold an RGBA image of height x width.
    """
    from label_studio_sdk.converter.brush import decode_rle

    try:
        flat = decode_rle(bytes(rle))
    except (ValueError, IndexError, TypeError) as e:
        raise BrushError(f"brush mask does not decode: {e}") from e
    if flat.size != height * width * 4:
        raise BrushError(f"brush mask holds {flat.size} values, not {height}x{width} RGBA pixels")
    return flat.reshape(height, width, 4)[:, :, 3] >= ALPHA_THRESHOLD


def brush_result(mask: np.ndarray, result_id: str = "engine") -> dict[str, Any]:
    """A ``mask`` brush result (a prediction's or an annotation's) for an (H, W) bool mask."""
    h, w = mask.shape
    return {
        "id": result_id,
        "from_name": MASK,
        "to_name": IMAGE,
        "type": "brushlabels",
        "original_width": int(w),
        "original_height": int(h),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": [BRUSH_LABEL]},
    }


def text_result(text: str, result_id: str = "engine-text") -> dict[str, Any]:
    """An ``expression`` text result."""
    return {"id": result_id, "from_name": EXPRESSION, "to_name": IMAGE, "type": "textarea", "value": {"text": [text]}}


def verdict_result(verdict: str, result_id: str = "verdict") -> dict[str, Any]:
    """A ``verdict`` choice result (``accept`` or ``reject``)."""
    return {"id": result_id, "from_name": VERDICT, "to_name": IMAGE, "type": "choices", "value": {"choices": [verdict]}}


def read_result(result: list[dict[str, Any]], height: int, width: int) -> dict[str, Any]:
    """An annotation's result list -> {"verdict", "mask" (bool (H, W) or None: no stroke),
    "text" (str or None: no text)}. Several strokes are one mask (their union)."""
    verdict, text, mask = None, None, None
    for r in result:
        value, name = r.get("value") or {}, r.get("from_name")
        if name == VERDICT and value.get("choices"):
            verdict = value["choices"][0]
        elif name == EXPRESSION and value.get("text"):
            text = " ".join(str(t) for t in value["text"]).strip() or None
        elif name == MASK and value.get("rle") is not None:
            h, w = r.get("original_height", height), r.get("original_width", width)
            if (h, w) != (height, width):
                raise BrushError(f"brush mask is {h}x{w}, the image {height}x{width}")
            stroke = brush_to_mask(value["rle"], height, width)
            mask = stroke if mask is None else mask | stroke
    return {"verdict": verdict, "mask": mask, "text": text}
