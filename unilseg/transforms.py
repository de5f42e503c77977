"""Letterboxing in and out of the model's square input, as the released UniLSeg demo does it.

In: one affine warp (scale = min(S/h, S/w), image centred with offsets (S - new)/2, cubic
interpolation, border = CLIP mean x 255), then /255, minus CLIP mean, over CLIP std, CHW float32.
Out: logits (S/4) -> bilinear x4 (align_corners=True) -> sigmoid -> inverse warp to (w, h)
(cubic, border 0) -> > threshold (0.35). Training masks use the same warp with nearest
interpolation and border 0. All functions are pure and work on numpy arrays (cv2).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BORDER_RGB = tuple(m * 255 for m in CLIP_MEAN)  # (122.77, 116.75, 104.09); a uint8 warp rounds to (123, 117, 104)


def letterbox_matrices(h: int, w: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Affine maps original (w, h) <-> letterboxed (size, size), each (2, 3) float64.

    Built from the same float32 triangles as the official demo, so both matrices match its
    values to the last bit.
    """
    scale = min(size / h, size / w)
    new_h, new_w = h * scale, w * scale
    bx, by = (size - new_w) / 2.0, (size - new_h) / 2.0
    src = np.array([[0, 0], [w, 0], [0, h]], np.float32)
    dst = np.array([[bx, by], [new_w + bx, by], [bx, new_h + by]], np.float32)
    return cv2.getAffineTransform(src, dst), cv2.getAffineTransform(dst, src)


def normalize(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, CLIP mean/std normalised."""
    x = image.astype(np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(CLIP_MEAN, np.float32)[:, None, None]
    std = np.asarray(CLIP_STD, np.float32)[:, None, None]
    return (x - mean) / std


def letterbox_image(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Letterboxes an RGB image for the model.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        size (int): input side S.

    Returns:
        tuple: (3, S, S) float32 normalised image, and the (2, 3) forward affine matrix.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    mat, _ = letterbox_matrices(image.shape[0], image.shape[1], size)
    warped = cv2.warpAffine(
        image, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB
    )
    return normalize(warped), mat


def letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool/uint8 target -> (S, S) uint8 in {0, 1} (nearest, border 0), aligned with letterbox_image."""
    mat, _ = letterbox_matrices(mask.shape[0], mask.shape[1], size)
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    return cv2.warpAffine(m, mat, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def logits_to_probs(logits: torch.Tensor, orig_hw: tuple[int, int], size: int) -> np.ndarray:
    """One prediction's logits -> foreground probability on the original image.

    Args:
        logits (torch.Tensor): (1, 1, S/4, S/4), (1, S/4, S/4) or (S/4, S/4).
        orig_hw (tuple[int, int]): original (h, w).
        size (int): input side S.

    Returns:
        np.ndarray: (h, w) float32 in [0, 1] (0 outside the letterbox). Cubic warping overshoots
        slightly; the result is clipped to [0, 1], which leaves any threshold in (0, 1) unchanged.
    """
    x = logits.detach().float().reshape(1, 1, *logits.shape[-2:]).cpu()
    x = torch.sigmoid(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True))[0, 0].numpy()
    h, w = orig_hw
    _, inv = letterbox_matrices(h, w, size)
    probs = cv2.warpAffine(x, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.clip(probs, 0.0, 1.0, out=probs)
